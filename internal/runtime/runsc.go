package runtime

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/runtime/conmon"
)

// gVisor's runsc runs a pod as one sandbox: the pod's first container
// (berth's pause process) creates it, the others join it through the
// io.kubernetes.cri.* annotations every spec carries. Three things differ
// from runc, all kept here:
//   - conmon runs runsc through berthd's shim (runsc_shim.go), which leaves
//     a waiter standing in for the container's process;
//   - a sub-container takes its stdio from `runsc start`, so the start
//     carries conmon's pipes, reopened from the waiter;
//   - runsc manages cgroups itself (no --systemd-cgroup), and pins a "null"
//     network namespace under its root unless told not to.

// isRunsc says whether a handler's binary is gVisor's runsc.
func isRunsc(path string) bool { return filepath.Base(path) == "runsc" }

// runscHandler is the conmon handler with runsc's start.
type runscHandler struct {
	conmonHandler
}

// shimRuntime is what conmon runs for a runsc create: the shim script,
// with runsc's global arguments; the rest is runsc's.
type shimRuntime struct {
	*cli
	script string
}

func (s shimRuntime) Command() (string, []string) { return s.script, s.GlobalArgs() }

var _ conmon.Runtime = shimRuntime{}

func newRunscHandler(h conmonHandler, stateDir string) (*runscHandler, error) {
	script, err := writeRunscShim(stateDir, h.rt)
	if err != nil {
		return nil, err
	}
	h.monitorRT = shimRuntime{cli: h.rt, script: script}
	h.features.PodSandbox = true
	return &runscHandler{conmonHandler: h}, nil
}

// Start runs a created container. One under conmon takes its stdio from
// the start: the waiter the shim left under conmon (whose pid conmon
// recorded as the container's) holds conmon's pipes, reopened through
// /proc. The pause process (no monitor) starts as under runc.
func (h *runscHandler) Start(ctx context.Context, id, dir string) error {
	if dir == "" {
		return h.rt.Start(ctx, id)
	}
	pid, err := conmon.ContainerPid(dir)
	if err != nil {
		return fmt.Errorf("container %s: its waiter's pid for %s start: %w", id, h.rt.Name(), err)
	}
	var files [3]*os.File
	for i, flag := range []int{os.O_RDONLY, os.O_WRONLY, os.O_WRONLY} {
		f, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/%d", pid, i), flag, 0)
		if err != nil {
			for _, g := range files[:i] {
				g.Close()
			}
			return fmt.Errorf("container %s: open its stdio for %s start (waiter pid %d): %w", id, h.rt.Name(), pid, err)
		}
		files[i] = f
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	return h.rt.StartWithIO(ctx, id, files[0], files[1], files[2])
}

// close unmounts the "null" network namespace runsc pins under its root
// for its gofers, so nothing of berth stays mounted after berthd stops
// (runsc pins a new one on its next start). Running sandboxes keep theirs:
// a namespace lives while a process is in it.
func (h *runscHandler) close() {
	p := filepath.Join(h.rt.root, "null-netns")
	// Concurrent runsc starts may stack pins; unmount until none is left.
	for i := 0; i < 16 && unix.Unmount(p, unix.MNT_DETACH) == nil; i++ {
	}
}

// runscDefaultArgs adds the runsc flags berth needs unless the handler's
// args already set them: --gofer-network-namespace=new keeps runsc from
// pinning a shared "null" network namespace as a mount under its root (a
// mount berth would leave behind), at the cost of one empty namespace per
// gofer. Older runsc builds without the flag are left alone.
func runscDefaultArgs(ctx context.Context, path string, args []string) []string {
	const flag = "--gofer-network-namespace"
	for _, a := range args {
		if a == flag || strings.HasPrefix(a, flag+"=") || a == "-gofer-network-namespace" || strings.HasPrefix(a, "-gofer-network-namespace=") {
			return args
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, path, "flags").CombinedOutput()
	if !strings.Contains(string(out), "gofer-network-namespace") {
		return args
	}
	return append(args, flag+"=new")
}
