package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/host"
	"github.com/berth-project/berth/internal/runtime/conmon"
)

// A container runc created waits in runc's init, blocked opening
// <root>/<id>/exec.fifo for writing; `runc start` opens the fifo for
// reading, reads the byte init then writes, removes the fifo (from then on
// runc reports the container running) and runs poststart hooks. Doing the
// same here saves a runc exec: about 20 ms, the whole of StartContainer's
// runtime step (docs/PERFORMANCE.md). The fifo and state.json are runc's
// own layout, stable since runc 1.0; where anything differs from what is
// expected here (not runc, no fifo, poststart hooks to run) fifoStart says
// so and the caller runs `runc start`.

// errNoFifoStart says that fifoStart does not apply: run the runtime's start.
var errNoFifoStart = errors.New("start through the exec fifo not applicable")

// fifoMaxState bounds the runc state file read for the init's pid.
const fifoMaxState = 1 << 20

// fifoStart starts runc container id (state under root, bundle in bundle)
// through its exec fifo. It returns errNoFifoStart, having changed nothing,
// when that does not apply. hold, when set, has the container's monitor
// hold the fifo open for reading before berthd opens it (see
// conmon.HoldExecFifo); when it fails, berthd's own open is the first.
func fifoStart(ctx context.Context, root, id, bundle string, hold func(fifo string) error) error {
	fifo, state, ok := waitingInit(root, id)
	if !ok {
		return errNoFifoStart
	}
	// runc (since 1.2) runs poststart hooks in its start: leave those to it.
	// A plain search is enough: a false match only costs the exec.
	if cfg, err := readBounded(filepath.Join(bundle, "config.json"), fifoMaxState); err != nil || bytes.Contains(cfg, []byte(`"poststart"`)) {
		return errNoFifoStart
	}
	// Asked only after a poll slice without the byte: a healthy start
	// gets it at once, and pays no /proc reads.
	started := func() bool { return execd(state.Pid, state.Start) }
	if hold != nil {
		if err := hold(fifo); err != nil {
			// An older monitor: the start goes on, with the window that
			// the hold closes (a berthd killed before init's write).
			if !errors.Is(err, conmon.ErrNoHold) {
				return fmt.Errorf("start %s: %w", id, err)
			}
		}
	}
	// Non-blocking: the open succeeds at once and lets init's open for
	// writing complete; the wait below is on poll.
	f, err := os.OpenFile(fifo, os.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("start %s: opening the exec fifo: %w", id, err)
	}
	defer f.Close()
	if err := waitFifo(ctx, f, state.Pid, started); errors.Is(err, errExecd) {
		return removeFifo(id, fifo)
	} else if err != nil {
		return fmt.Errorf("start %s: %w", id, err)
	}
	var b [1]byte
	n, err := unix.Read(int(f.Fd()), b[:])
	if n <= 0 {
		if err == nil || err == unix.EAGAIN {
			return fmt.Errorf("start %s: the container's process exited before it could start", id)
		}
		return fmt.Errorf("start %s: reading the exec fifo: %w", id, err)
	}
	return removeFifo(id, fifo)
}

// finishCutStart finishes the start of runc container id (state under
// root) that a kill of berthd cut short after init had exec'd the
// container's process (its monitor held the exec fifo, or berthd read the
// byte) and before the fifo was removed: runc still says created while
// the process runs. It removes the fifo and says so; for a container
// whose init still waits, or is gone, it does nothing. It never opens the
// fifo: that would start a container nobody asked to start.
func finishCutStart(root, id string) (bool, error) {
	fifo, state, ok := waitingInit(root, id)
	if !ok || !execd(state.Pid, state.Start) {
		return false, nil
	}
	return true, removeFifo(id, fifo)
}

// initState is what runc's state.json says of a container's init: its pid
// and start time (clock ticks after boot).
type initState struct {
	Pid   int    `json:"init_process_pid"`
	Start uint64 `json:"init_process_start"`
}

// waitingInit returns the exec fifo of runc container id (state under
// root) and its init's state, when runc's layout is there: a fifo (runc
// says created) and a state.json naming init. ok is false otherwise.
func waitingInit(root, id string) (fifo string, state initState, ok bool) {
	dir := filepath.Join(root, id)
	fifo = filepath.Join(dir, "exec.fifo")
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode().Type() != fs.ModeNamedPipe {
		return "", state, false
	}
	st, err := readBounded(filepath.Join(dir, "state.json"), fifoMaxState)
	if err != nil || json.Unmarshal(st, &state) != nil || state.Pid <= 0 {
		return "", state, false
	}
	return fifo, state, true
}

// removeFifo removes the exec fifo of a started container: from then on
// runc reports it running.
func removeFifo(id, fifo string) error {
	if err := os.Remove(fifo); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("start %s: %w", id, err)
	}
	return nil
}

// initComm is the command name of runc's init (its nsexec stage 2) until
// it execs the container's process.
const initComm = "runc:[2:INIT]"

// errExecd: init has exec'd the container's process (see execd).
var errExecd = errors.New("the container's process runs already")

// execd says that init (pid, started at start clock ticks after boot)
// has exec'd the container's process: an earlier start read the fifo and
// was cut short (berthd killed) before it removed it, so runc still says
// created, and no one will ever write to the fifo again. Every later
// start would wait on it for ever.
func execd(pid int, start uint64) bool {
	st, err := host.Process(pid).Stat()
	if err != nil || (start != 0 && st.StartTime != start) {
		return false // gone, or another process: the wait and read tell
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return err == nil && strings.TrimSpace(string(comm)) != initComm
}

// waitFifo waits until fifo f is readable (init wrote its byte) or init
// (pid) is gone, within ctx. A pidfd makes init's death wake the poll; the
// poll is cut into short slices so that ctx is honoured, and that
// started is asked: errExecd when it says yes.
func waitFifo(ctx context.Context, f *os.File, pid int, started func() bool) error {
	pfds := []unix.PollFd{{Fd: int32(f.Fd()), Events: unix.POLLIN}}
	if pidfd, err := unix.PidfdOpen(pid, 0); err == nil {
		defer unix.Close(pidfd)
		pfds = append(pfds, unix.PollFd{Fd: int32(pidfd), Events: unix.POLLIN})
	} else if errors.Is(err, unix.ESRCH) {
		return nil // gone already: the read tells whether it wrote first
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := unix.Poll(pfds, 100)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("waiting on the exec fifo: %w", err)
		}
		if n > 0 {
			return nil
		}
		if len(pfds) == 1 && unix.Kill(pid, 0) == unix.ESRCH {
			return nil // no pidfd: found by looking
		}
		if started() {
			return errExecd
		}
	}
}

// readBounded reads at most max bytes of a regular file.
func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > max {
		return nil, fmt.Errorf("%s: not a regular file of at most %d bytes", path, max)
	}
	var buf bytes.Buffer
	_, err = buf.ReadFrom(f)
	return buf.Bytes(), err
}
