package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/runtime/conmon"
)

// gVisor's runsc runs a pod as one sandbox: the pod's first container
// (berth's pause process) creates it, the others join it through the
// io.kubernetes.cri.* annotations every spec carries. What differs from
// runc is all kept here:
//   - conmon runs runsc through berthd's shim (runsc_shim.go), which leaves
//     a waiter standing in for the container's process;
//   - a sub-container takes its stdio from `runsc start`, so the start
//     carries conmon's pipes, reopened from the waiter;
//   - specs are adjusted where gVisor reads them differently (runsc_spec.go):
//     PID and UTS namespaces, masked and read-only paths; a host-network
//     sandbox gets --network=host;
//   - exec'd processes live in the Sentry (killed there on a timeout), and
//     port-forward goes through runsc (its netstack is not the netns's);
//   - runsc manages cgroups itself (no --systemd-cgroup), and pins a "null"
//     network namespace under its root unless told not to.

// isRunsc says whether a handler's binary is gVisor's runsc.
func isRunsc(path string) bool { return filepath.Base(path) == "runsc" }

// runscHandler is the conmon handler with gVisor's differences.
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

// Create adjusts a sub-container's spec for gVisor (runsc_spec.go) and
// creates it under conmon.
func (h *runscHandler) Create(ctx context.Context, o CreateOptions) (Process, error) {
	if err := runscAdjustSpec(o.BundleDir); err != nil {
		return Process{}, fmt.Errorf("container %s: adjust its spec for %s: %w", o.ID, h.rt.Name(), err)
	}
	return h.conmonHandler.Create(ctx, o)
}

// CreateUnmonitored creates the pod's sandbox (its pause container). A pod
// on the node's network has no network namespace in its spec: runsc's
// default --network=sandbox refuses to take over the host's interfaces
// ("cannot run with network enabled in root network namespace",
// runsc/sandbox/network.go), so such a sandbox is made with --network=host,
// where gVisor passes its sockets through to the host's stack (its start
// takes the flag too). The Sentry keeps the mode its sandbox was made with
// for all its containers.
func (h *runscHandler) CreateUnmonitored(ctx context.Context, id, bundle string) error {
	if err := runscAdjustSpec(bundle); err != nil {
		return fmt.Errorf("pod sandbox %s: adjust its spec for %s: %w", id, h.rt.Name(), err)
	}
	extra, err := runscSandboxArgs(bundle, h.rt.args)
	if err != nil {
		return fmt.Errorf("pod sandbox %s: %w", id, err)
	}
	return h.rt.Create(ctx, id, bundle, extra...)
}

// Start runs a created container. One under conmon takes its stdio from
// the start: the waiter the shim left under conmon (whose pid conmon
// recorded as the container's) holds conmon's pipes, reopened through
// /proc. The pause process (no monitor) starts as under runc.
func (h *runscHandler) Start(ctx context.Context, id, dir string) error {
	if dir == "" {
		// runsc sets the sandbox's network up at its start, with the
		// start's flags: they must match the create's.
		st, err := h.rt.State(ctx, id)
		if err != nil {
			return err
		}
		extra, err := runscSandboxArgs(st.Bundle, h.rt.args)
		if err != nil {
			return fmt.Errorf("pod sandbox %s: %w", id, err)
		}
		return h.rt.StartWith(ctx, id, extra)
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

// Exec runs runsc's exec. The process lives in the Sentry: the pid file
// names the runsc exec command, so a timeout or a lost client also kills
// the process itself, by its pid in the sandbox (runsc kill --pid), or it
// would run on (and hold its output pipes) after the exec ended.
func (h *runscHandler) Exec(ctx context.Context, id string, o ExecOptions) (int, error) {
	return h.rt.execProcess(ctx, id, o, &innerKill{
		pidFile: o.PidFile + ".inner",
		kill: func(pid int) {
			kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), execKillGrace)
			defer cancel()
			if _, err := h.rt.rtRun(kctx, rtCall{sub: "kill", id: id, args: []string{"--pid", strconv.Itoa(pid), id, "9"}}); err != nil {
				slog.Debug("killing exec'd process in the sandbox", "container", id, "pid", pid, "err", err)
			}
		},
	})
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

// runscDefaults are the runsc flags berth adds unless the handler's args
// set them (a runsc build without the flag is left alone):
//   - --gofer-network-namespace=new keeps runsc from pinning a shared
//     "null" network namespace as a mount under its root (a mount berth
//     would leave behind), at the cost of one empty namespace per gofer;
//   - --oci-seccomp applies the spec's seccomp profile (RuntimeDefault,
//     Localhost) to the container's processes inside the Sentry, which
//     otherwise ignores it and filters only its own host syscalls
//     (runsc/boot/seccomp.go: buildOCISeccompProgram returns nil without
//     the flag);
//   - --allow-suid honours set-user-ID bits at execve, as Linux does for a
//     container with allowPrivilegeEscalation (no_new_privs still stops
//     it); without it gVisor ignores them (runsc/config/config.go:
//     "--allow-suid is disabled, SUID/SGID bits on executables will be
//     ignored"). The elevation stays inside the sandbox.
var runscDefaults = []string{"--gofer-network-namespace=new", "--oci-seccomp", "--allow-suid"}

// runscDefaultArgs adds runscDefaults that the binary at path knows
// (`runsc flags`) and args do not set.
func runscDefaultArgs(ctx context.Context, path string, args []string) []string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, path, "flags").CombinedOutput()
	return addRunscDefaults(args, string(out))
}

// addRunscDefaults adds to args the runscDefaults named in known (runsc's
// flag list) that args do not set.
func addRunscDefaults(args []string, known string) []string {
	out := args
	for _, d := range runscDefaults {
		name, _, _ := strings.Cut(strings.TrimLeft(d, "-"), "=")
		set := false
		for _, a := range args {
			a = strings.TrimLeft(a, "-")
			if a == name || strings.HasPrefix(a, name+"=") {
				set = true
			}
		}
		if !set && (strings.Contains(known, "-"+name+"\n") || strings.Contains(known, "-"+name+" ")) {
			out = append(out, d)
		}
	}
	return out
}

// PortDialer is a handler whose pods' network stack is not the host
// kernel's (gVisor's netstack serves the pod's interfaces), so port-forward
// cannot reach the pod's loopback from its network namespace: the runtime
// connects instead.
type PortDialer interface {
	// DialPort connects to TCP port on the loopback of the pod whose
	// sandbox container is sandboxID.
	DialPort(ctx context.Context, sandboxID string, port int32) (net.Conn, error)
}

var _ PortDialer = (*runscHandler)(nil)

// DialPort connects through `runsc port-forward --stream`: runsc connects
// to a unix socket berth listens on and hands that connection to the
// Sentry, which joins it to port on the sandbox's loopback
// (runsc/boot/loader.go portForward). The accepted end is the connection.
func (h *runscHandler) DialPort(ctx context.Context, sandboxID string, port int32) (net.Conn, error) {
	dir, err := os.MkdirTemp("", "berth-runsc-pf-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "s"), Net: "unix"})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	accepted := make(chan *net.UnixConn, 1)
	go func() {
		c, err := l.AcceptUnix()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	// runsc returns once the Sentry holds the stream: a refused port is
	// its error.
	_, err = h.rt.rtRun(ctx, rtCall{sub: "port-forward", id: sandboxID,
		args: []string{"--stream", filepath.Join(dir, "s"), sandboxID, strconv.Itoa(int(port))}})
	if err != nil {
		l.Close()
		if c, ok := <-accepted; ok {
			c.Close()
		}
		return nil, err
	}
	select {
	case c, ok := <-accepted:
		if !ok {
			return nil, fmt.Errorf("%s port-forward %s: the stream was not connected", h.rt.Name(), sandboxID)
		}
		return c, nil
	case <-ctx.Done():
		l.Close()
		if c, ok := <-accepted; ok {
			c.Close()
		}
		return nil, ctx.Err()
	}
}
