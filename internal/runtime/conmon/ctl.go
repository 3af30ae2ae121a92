package conmon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/berth-project/berth/internal/errdefs"
)

// conmon's control fifo messages: "<type> <height> <width>\n".
const (
	ctlResize    = 1
	ctlReopenLog = 2
)

// reopenTimeout bounds how long ReopenLog waits for conmon to create the new
// log file when the caller's context has no deadline.
const reopenTimeout = 10 * time.Second

// AttachSocketPath is conmon's attach socket for a container (SOCK_SEQPACKET;
// each packet's first byte names the stream). The path may exceed the 108
// bytes of a socket address: connect through /proc/self/fd/<dirfd>/attach.
func AttachSocketPath(bundleDir string) string {
	return filepath.Join(bundleDir, attachSocket)
}

// ReopenLog asks the container's conmon to reopen its log file, for kubelet's
// log rotation: kubelet renames the file, then calls ReopenContainerLog and
// expects new lines in a new file at the original path. It returns once that
// file exists.
func ReopenLog(ctx context.Context, bundleDir, logPath string) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, reopenTimeout)
		defer cancel()
	}
	if err := writeCtl(bundleDir, fmt.Sprintf("%d 0 0\n", ctlReopenLog)); err != nil {
		return err
	}
	for {
		if _, err := os.Stat(logPath); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("monitor: conmon did not reopen log %s: %w", logPath, errdefs.ErrDeadlineExceeded)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// Resize sets the container's terminal size.
func Resize(bundleDir string, width, height uint16) error {
	return writeCtl(bundleDir, fmt.Sprintf("%d %d %d\n", ctlResize, height, width))
}

// writeCtl writes one message to conmon's control fifo without blocking: with
// no conmon reading, the open fails at once (ENXIO) instead of hanging.
func writeCtl(bundleDir, msg string) error {
	path := filepath.Join(bundleDir, ctlFifo)
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ENXIO) || errors.Is(err, os.ErrNotExist) {
			return errdefs.Precondition("monitor: conmon is not running for bundle " + bundleDir)
		}
		return fmt.Errorf("monitor: opening conmon control fifo: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(msg); err != nil {
		return fmt.Errorf("monitor: writing to conmon control fifo %s: %w", path, err)
	}
	return nil
}
