package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/cgroups"
	"github.com/berth-project/berth/internal/host"
)

// PauseProc names one pause process that berthd started itself: its pid and
// its start time (clock ticks after boot, /proc/<pid>/stat), which together
// tell it from a later process that got the same pid.
type PauseProc struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"startTime"`
}

// PauseRequest is what a pause process is started with.
type PauseRequest struct {
	// Dir is the pod dir: the pause process mounts its empty root over it
	// in its own mount namespace, and finds it by its command line.
	Dir string
	// Namespaces are the pinned files of the pod's net, ipc and uts
	// namespaces to join; a missing kind stays the host's.
	Namespaces map[string]string
	// Cgroup is the cgroupfs path it is moved into; none for one started
	// ahead of its pod (prepared.go), which Move puts in its pod's.
	Cgroup string
	// OOMScoreAdj is written to its oom_score_adj.
	OOMScoreAdj int
	// Exited, if set, is called (on a goroutine of its own) when the
	// process exits while this berthd runs and Kill was not asked to end
	// it: its PID namespace is then empty for good.
	Exited func()
}

// Pauser starts and ends pause processes without an OCI runtime. The real
// one (nil in Config) is the host's; tests fake it.
type Pauser interface {
	// Start starts a pause process as PID 1 of a new PID namespace in the
	// request's namespaces and cgroup, and returns once it has isolated
	// itself (or fails, leaving no process).
	Start(ctx context.Context, req PauseRequest) (PauseProc, error)
	// Kill ends p, if it is still the process it names, and waits until
	// it is gone (with it, every process of its PID namespace).
	Kill(p PauseProc) error
	// Alive says p is still the process it names and has not exited.
	Alive(p PauseProc) bool
	// Move puts p, if it is still the process it names, in cgroup (a
	// cgroupfs path, made if missing) with the pause process's CPU shares.
	Move(p PauseProc, cgroup string) error
	// Find returns the pause processes running for pods under podsDir
	// (berthd's sandboxes dir), by pod id.
	Find(podsDir string) map[string][]PauseProc
}

// pauseName is the pause process's argv[0]; pauseDirEnv names the pod dir
// in its environment (readable by root only: it is not dumpable).
const (
	pauseName   = "berth-pause"
	pauseDirEnv = "BERTH_POD_DIR"
)

// pauseSetupTimeout bounds the pause process's own setup: a few
// milliseconds normally.
const pauseSetupTimeout = 10 * time.Second

// hostPauser starts berth-pause with os/exec and reaps those it started
// while berthd runs; after a restart they are init's children.
type hostPauser struct {
	binary string
	log    *slog.Logger

	mu      sync.Mutex
	done    map[PauseProc]chan struct{} // closed once reaped
	killing map[PauseProc]bool          // Kill was asked to end it
	// image is a sealed in-memory copy of binary, made at the first start,
	// which every pause process runs from: its /proc/<pid>/exe reaches no
	// file of the host's that a container could open for writing once it
	// exits (the runc CVE-2019-5736 pattern), and its pages are shared.
	image *os.File
}

// sealedImage returns the sealed copy of the berth-pause binary.
func (h *hostPauser) sealedImage() (*os.File, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.image != nil {
		return h.image, nil
	}
	src, err := os.Open(h.binary)
	if err != nil {
		return nil, fmt.Errorf("open berth-pause: %w", err)
	}
	defer src.Close()
	fd, err := unix.MemfdCreate(pauseName, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("copy berth-pause into memory: %w", err)
	}
	img := os.NewFile(uintptr(fd), "memfd:"+pauseName)
	if _, err := io.Copy(img, src); err != nil {
		img.Close()
		return nil, fmt.Errorf("copy berth-pause into memory: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SEAL|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE); err != nil {
		img.Close()
		return nil, fmt.Errorf("seal the copy of berth-pause: %w", err)
	}
	h.image = img
	return img, nil
}

func newHostPauser(binary string, log *slog.Logger) *hostPauser {
	return &hostPauser{binary: binary, log: log, done: map[PauseProc]chan struct{}{}, killing: map[PauseProc]bool{}}
}

func (h *hostPauser) Start(ctx context.Context, req PauseRequest) (PauseProc, error) {
	if h.binary == "" {
		return PauseProc{}, errors.New("pods sharing a PID namespace need berth-pause, which was not found next to berthd or on PATH (run hack/install.sh)")
	}
	img, err := h.sealedImage()
	if err != nil {
		return PauseProc{}, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return PauseProc{}, err
	}
	defer r.Close()
	// The image is the child's fd 4, only to be exec'd from (berth-pause
	// closes it with every other fd once isolated).
	cmd := exec.Command("/proc/self/fd/4", "--isolate")
	// What the pod's containers read in /proc/1/cmdline: no host path.
	cmd.Args[0] = pauseName
	cmd.Dir = "/"
	cmd.Env = []string{pauseDirEnv + "=" + req.Dir}
	cmd.ExtraFiles = []*os.File{w, img}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS,
		// Its own session: a terminal's ^C to berthd's process group must
		// not end every shared-PID pod.
		Setsid: true,
	}
	t0 := time.Now()
	err = startInNamespaces(req.Namespaces, cmd.Start)
	w.Close()
	if err != nil {
		return PauseProc{}, fmt.Errorf("start berth-pause: %w", err)
	}
	pid := cmd.Process.Pid
	// Not yet reaped (Wait is below), so the pid is still this process's.
	st, err := host.Process(pid).Stat()
	p := PauseProc{PID: pid, StartTime: st.StartTime}
	done := make(chan struct{})
	started := make(chan struct{}) // closed once Start succeeded
	h.mu.Lock()
	h.done[p] = done
	h.mu.Unlock()
	go func() {
		cmd.Wait()
		close(done)
		h.mu.Lock()
		delete(h.done, p)
		asked := h.killing[p]
		delete(h.killing, p)
		h.mu.Unlock()
		select {
		case <-started:
			if !asked && req.Exited != nil {
				h.log.Warn("pause process exited", "pid", pid, "state", cmd.ProcessState.String())
				req.Exited()
			}
		default: // a failed start: Start reports it
		}
	}()
	fail := func(err error) (PauseProc, error) {
		cmd.Process.Kill()
		select {
		case <-done:
		case <-time.After(pauseSetupTimeout):
		}
		return PauseProc{}, err
	}
	if err != nil {
		return fail(fmt.Errorf("read berth-pause's start time: %w", err))
	}
	t1 := time.Now()
	if req.Cgroup != "" {
		if err := cgroups.Enter(req.Cgroup, pid, pauseCPUShares); err != nil {
			return fail(err)
		}
	}
	t2 := time.Now()
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid), []byte(strconv.Itoa(req.OOMScoreAdj)), 0); err != nil {
		return fail(fmt.Errorf("set berth-pause's oom_score_adj: %w", err))
	}
	// Its answer: "ok\n", then EOF when it has closed every fd.
	deadline := time.Now().Add(pauseSetupTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	r.SetReadDeadline(deadline)
	// A cancel (berthd's shutdown, for one prepared ahead) ends the wait.
	defer context.AfterFunc(ctx, func() { r.SetReadDeadline(time.Now()) })()
	msg, err := io.ReadAll(r)
	if err != nil {
		return fail(fmt.Errorf("berth-pause did not finish its setup: %w", err))
	}
	if string(msg) != "ok\n" {
		if len(msg) == 0 {
			msg = []byte("exited without a word")
		}
		return fail(fmt.Errorf("berth-pause: %s", msg))
	}
	h.log.Debug("pause process started", "pid", pid, "fork", t1.Sub(t0), "cgroup", t2.Sub(t1), "setup", time.Since(t2))
	close(started)
	return p, nil
}

// pauseCPUShares is the pause process's cpu.shares (kubelet's sandbox
// default, as the runtime's pause container had).
const pauseCPUShares = 2

// startInNamespaces runs start (a fork) on an OS thread that has joined
// the given namespaces, so the child starts in them; the thread is never
// returned to the Go scheduler (see pinNamespaces).
func startInNamespaces(paths map[string]string, start func() error) error {
	ch := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		// Deliberately no UnlockOSThread: the thread is in the pod's namespaces.
		for _, k := range []nsKind{nsNet, nsIPC, nsUTS} {
			path := paths[k.name]
			if path == "" {
				continue
			}
			fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				ch <- fmt.Errorf("open %s namespace: %w", k.name, err)
				return
			}
			err = unix.Setns(fd, k.flag)
			unix.Close(fd)
			if err != nil {
				ch <- fmt.Errorf("join %s namespace %s: %w", k.name, path, err)
				return
			}
		}
		ch <- start()
	}()
	return <-ch
}

func (h *hostPauser) Alive(p PauseProc) bool {
	st, err := host.Process(p.PID).Stat()
	return err == nil && st.State != 'Z' && st.StartTime == p.StartTime
}

func (h *hostPauser) Move(p PauseProc, cgroup string) error {
	if !h.Alive(p) {
		return fmt.Errorf("pause process %d is gone", p.PID)
	}
	// A stranger is moved only if p exits, is reaped and its pid reused
	// between the check and the write: microseconds, for a process that
	// only pauses.
	return cgroups.Enter(cgroup, p.PID, pauseCPUShares)
}

func (h *hostPauser) Kill(p PauseProc) error {
	if !h.Alive(p) {
		return nil
	}
	h.mu.Lock()
	done := h.done[p]
	if done != nil {
		h.killing[p] = true
	}
	h.mu.Unlock()
	if err := unix.Kill(p.PID, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill pause process %d: %w", p.PID, err)
	}
	if done != nil {
		// Our child: reaped by Start's Wait.
		select {
		case <-done:
			return nil
		case <-time.After(pauseSetupTimeout):
			return fmt.Errorf("pause process %d did not exit within %v of SIGKILL", p.PID, pauseSetupTimeout)
		}
	}
	if !host.WaitGone(p.PID, pauseSetupTimeout) {
		return fmt.Errorf("pause process %d did not exit within %v of SIGKILL", p.PID, pauseSetupTimeout)
	}
	return nil
}

func (h *hostPauser) Find(podsDir string) map[string][]PauseProc {
	out := map[string][]PauseProc{}
	host.Find(func(proc host.Proc) bool {
		args, err := proc.Cmdline()
		// --isolated: the second stage of the Go berth-pause of older
		// berths, whose pause processes outlive an upgrade.
		if err != nil || len(args) != 2 || args[0] != pauseName || (args[1] != "--isolate" && args[1] != "--isolated") {
			return false
		}
		dir, _, err := proc.Getenv(pauseDirEnv)
		if err != nil || filepath.Dir(dir) != podsDir {
			return false
		}
		st, err := proc.Stat()
		if err != nil || st.State == 'Z' {
			return false
		}
		id := filepath.Base(dir)
		out[id] = append(out[id], PauseProc{PID: proc.PID, StartTime: st.StartTime})
		return true
	})
	return out
}
