package conmon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/errdefs"
)

// Stream numbers conmon puts in the first byte of each packet it sends on
// the attach socket (its stdpipe_t). Input from the client is raw bytes.
const (
	attachStdout = 2
	attachStderr = 3
)

// attachBufSize holds one packet: conmon reads 8 KiB at a time and adds its
// stream byte; the slack guards against a conmon with bigger reads.
const attachBufSize = 64<<10 + 1

// attachInMax is the largest stdin packet sent to the monitor.
const attachInMax = 32 << 10

// AttachIO is one attach session's streams.
type AttachIO struct {
	// Stdin goes to the container's stdin; nil sends nothing.
	Stdin io.Reader
	// Stdout and Stderr receive the container's output from now on; nil
	// drops that stream. A terminal container's output is all stdout.
	Stdout, Stderr io.Writer
	// StdinOnce: the container was created with stdin_once, so the end of
	// Stdin ends its stdin (conmon closes it) and the session stays until
	// the output ends. Otherwise the end of Stdin ends the session.
	StdinOnce bool
}

// Attach joins the container whose conmon serves the attach socket in
// bundleDir, copying until the container's output ends (it exited), ctx
// ends, the output cannot be delivered, or Stdin ends (see StdinOnce).
func Attach(ctx context.Context, bundleDir string, o AttachIO) error {
	conn, err := connectAttach(bundleDir)
	if err != nil {
		return err
	}
	var closeOnce sync.Once
	closeConn := func() { closeOnce.Do(func() { conn.Close() }) }
	defer closeConn()
	stop := context.AfterFunc(ctx, closeConn)
	defer stop()

	outDone := make(chan error, 1)
	go func() { outDone <- copyAttachOutput(conn, o.Stdout, o.Stderr) }()

	var inDone chan error
	if o.Stdin != nil {
		inDone = make(chan error, 1)
		go func() {
			// Packets of at most attachInMax bytes: a SOCK_SEQPACKET
			// read takes one packet and drops what does not fit in
			// its buffer (berth-monitor's and conmon's hold 64 and
			// 32 KiB). The wrappers keep io.CopyBuffer from going
			// around the buffer through WriteTo or ReadFrom.
			_, err := io.CopyBuffer(struct{ io.Writer }{conn}, struct{ io.Reader }{o.Stdin}, make([]byte, attachInMax))
			// Half-close: conmon sees the end of input (and closes a
			// stdin_once container's stdin) but keeps sending output.
			_ = conn.CloseWrite()
			inDone <- err
		}()
	}
	select {
	case err := <-outDone:
		return attachResult(ctx, err)
	case err := <-inDone:
		if err != nil || !o.StdinOnce {
			return attachResult(ctx, err)
		}
		return attachResult(ctx, <-outDone)
	}
}

func attachResult(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// connectAttach connects to conmon's attach socket. The socket path can be
// longer than a socket address allows, so it is reached through an O_PATH
// descriptor of its directory.
func connectAttach(bundleDir string) (*net.UnixConn, error) {
	dir, err := unix.Open(bundleDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, errdefs.NotFound("monitor: no bundle directory " + bundleDir)
		}
		return nil, fmt.Errorf("monitor: opening bundle dir %s: %w", bundleDir, err)
	}
	defer unix.Close(dir)
	addr := &net.UnixAddr{Net: "unixpacket", Name: "/proc/self/fd/" + strconv.Itoa(dir) + "/" + attachSocket}
	conn, err := net.DialUnix("unixpacket", nil, addr)
	if err != nil {
		if errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.ENOENT) {
			return nil, errdefs.Precondition("monitor: the container's conmon is not serving its attach socket (container not running?)")
		}
		return nil, fmt.Errorf("monitor: connecting to attach socket %s: %w", AttachSocketPath(bundleDir), err)
	}
	return conn, nil
}

// copyAttachOutput demultiplexes conmon's packets until the socket ends. A
// write error ends it: the client is gone.
func copyAttachOutput(conn *net.UnixConn, stdout, stderr io.Writer) error {
	buf := make([]byte, attachBufSize)
	for {
		n, err := conn.Read(buf)
		if n > 1 {
			var w io.Writer
			switch buf[0] {
			case attachStdout:
				w = stdout
			case attachStderr:
				w = stderr
			}
			if w != nil {
				if _, werr := w.Write(buf[1:n]); werr != nil {
					return fmt.Errorf("delivering container output: %w", werr)
				}
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
				return nil
			}
			return fmt.Errorf("monitor: reading attach socket: %w", err)
		}
		if n == 0 {
			return nil // conmon closed the socket: the container exited
		}
	}
}
