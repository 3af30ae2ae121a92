package conmon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ctlHoldFifo is berth-monitor's own control message: hold the exec fifo
// open for reading (conmon ignores it).
const ctlHoldFifo = 3

// holdLink is the bundle's symlink to the runtime's exec fifo, which
// berth-monitor opens.
const holdLink = "exec.fifo"

// holdWait bounds the wait for the monitor's open: a monitor that does not
// know the message (conmon, or a berth-monitor older than it, still
// running a container made before an upgrade) never opens.
const holdWait = time.Second

// ErrNoHold says the monitor did not open the exec fifo within holdWait,
// or could not be watched doing so.
var ErrNoHold = errors.New("monitor: the exec fifo was not opened by the monitor")

// HoldExecFifo asks berth-monitor, the monitor of the container whose
// bundle is bundleDir, to open the container's exec fifo (the OCI
// runtime's, at fifo) for reading and keep it open, and returns once the
// fifo was opened. From then on the runtime's init, blocked opening it
// for writing, writes its byte into a pipe that has a reader whatever
// becomes of berthd: a berthd killed between its own open and init's
// write would otherwise leave init's write no reader (EPIPE) and the
// container dead before its start. ErrNoHold: the monitor did not open it.
func HoldExecFifo(ctx context.Context, bundleDir, fifo string) error {
	// Without a watch (inotify instances or watches exhausted) the hold
	// is not asked for: the start goes on as without it.
	in, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("%w: inotify: %v", ErrNoHold, err)
	}
	defer unix.Close(in)
	// Watched before the ask: the monitor's open is the event.
	if _, err := unix.InotifyAddWatch(in, fifo, unix.IN_OPEN); err != nil {
		return fmt.Errorf("%w: watching the exec fifo: %v", ErrNoHold, err)
	}
	link := filepath.Join(bundleDir, holdLink)
	if cur, err := os.Readlink(link); err != nil || cur != fifo {
		os.Remove(link)
		if err := os.Symlink(fifo, link); err != nil {
			return fmt.Errorf("monitor: linking the exec fifo into the bundle: %w", err)
		}
	}
	if err := writeCtl(bundleDir, fmt.Sprintf("%d 0 0\n", ctlHoldFifo)); err != nil {
		return err
	}
	deadline := time.Now().Add(holdWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	pfd := []unix.PollFd{{Fd: int32(in), Events: unix.POLLIN}}
	for {
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			return fmt.Errorf("%w within %v", ErrNoHold, holdWait)
		}
		// Slices, so that a cancel is seen.
		ms := min(int(left/time.Millisecond)+1, 100)
		n, err := unix.Poll(pfd, ms)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("monitor: waiting for the exec fifo's open: %w", err)
		}
		if n > 0 {
			return openSeen(in)
		}
	}
}

// openSeen reads the events on inotify fd in: nil for an open of the
// watched fifo, which is the monitor's (berthd has not opened it, and
// init's open for writing completes only once a reader has); ErrNoHold
// when the fifo went away (the watch is dropped) instead.
func openSeen(in int) error {
	var buf [4096]byte
	n, err := unix.Read(in, buf[:])
	if err != nil {
		return fmt.Errorf("monitor: reading the exec fifo's events: %w", err)
	}
	for off := 0; off+unix.SizeofInotifyEvent <= n; {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		if ev.Mask&unix.IN_OPEN != 0 {
			return nil
		}
		off += unix.SizeofInotifyEvent + int(ev.Len)
	}
	return fmt.Errorf("%w: the exec fifo went away", ErrNoHold)
}
