package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"

	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"

	"github.com/berth-project/berth/internal/container"
	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/network"
	berthruntime "github.com/berth-project/berth/internal/runtime"
	"github.com/berth-project/berth/internal/sandbox"
)

// runtime runs streaming sessions for the library (streaming.Runtime).
type runtime struct {
	containers *container.Service
	sandboxes  *sandbox.Service
	runtimes   *berthruntime.Registry
	log        *slog.Logger
}

// Exec runs cmd in the container. A non-zero exit is reported as an exit
// error, which the library sends as the exit code, not a stream failure.
func (r *runtime) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	o := container.ExecOptions{Cmd: cmd, TTY: tty, Resize: winSizes(ctx, resize)}
	if in != nil {
		o.Stdin = in
	}
	if out != nil {
		o.Stdout = out
	}
	if errOut != nil && !tty {
		o.Stderr = errOut
	}
	code, err := r.containers.Exec(ctx, id, o)
	if err != nil {
		r.log.Debug("exec session failed", "container", id, "cmd", cmd, "err", err)
		return err
	}
	r.log.Debug("exec session ended", "container", id, "cmd", cmd, "exitCode", code)
	if code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", code), Code: code}
	}
	return nil
}

// Attach joins the container's stdio through its conmon.
func (r *runtime) Attach(ctx context.Context, id string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	o := container.AttachOptions{Resize: winSizes(ctx, resize)}
	if in != nil {
		o.Stdin = in
	}
	if out != nil {
		o.Stdout = out
	}
	if errOut != nil {
		o.Stderr = errOut
	}
	err := r.containers.Attach(ctx, id, o)
	if err != nil && !errors.Is(err, context.Canceled) {
		r.log.Debug("attach session failed", "container", id, "err", err)
		return err
	}
	return nil
}

// PortForward connects stream to port on the pod's loopback, from inside
// the pod's network namespace (the host's for a host-network pod).
func (r *runtime) PortForward(ctx context.Context, podID string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	pod, err := r.sandboxes.Get(podID)
	if err != nil {
		return err
	}
	if pod.State != sandbox.Ready {
		return errdefs.Precondition(fmt.Sprintf("pod sandbox %s is not ready; port-forward needs a running pod", podID))
	}
	if port <= 0 || port > 65535 {
		return errdefs.Invalid(fmt.Sprintf("port %d is not a valid TCP port", port))
	}
	dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var conn net.Conn
	if pod.HostNetwork {
		var d net.Dialer
		conn, err = d.DialContext(dialCtx, "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	} else if d := r.portDialer(pod.RuntimeHandler); d != nil {
		conn, err = d.DialPort(dialCtx, podID, port)
	} else {
		netns := pod.Namespaces["net"]
		if netns == "" {
			return errdefs.Precondition(fmt.Sprintf("pod sandbox %s has no network namespace", podID))
		}
		conn, err = network.DialPod(dialCtx, netns, port)
	}
	if err != nil {
		return fmt.Errorf("port-forward to port %d of pod %s: %w", port, podID, err)
	}
	defer conn.Close()
	r.log.Debug("port-forward", "pod", podID, "port", port)

	toPod, fromPod := make(chan error, 1), make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, stream)
		// The client is done sending: pass the end on, keep reading.
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		toPod <- err
	}()
	go func() {
		_, err := io.Copy(stream, conn)
		fromPod <- err
	}()
	var err2 error
	select {
	case err2 = <-fromPod:
		// The pod closed its side: nothing more will come back.
	case err2 = <-toPod:
		if err2 == nil {
			// The client finished sending; the answer may still be
			// on its way.
			select {
			case err2 = <-fromPod:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	if err2 != nil && !errors.Is(err2, net.ErrClosed) && !errors.Is(err2, io.EOF) {
		return fmt.Errorf("port-forward to port %d of pod %s: %w", port, podID, err2)
	}
	return nil
}

// portDialer is the pod's handler when it connects to pod ports itself.
func (r *runtime) portDialer(handler string) berthruntime.PortDialer {
	if r.runtimes == nil {
		return nil
	}
	h, err := r.runtimes.Handler(handler)
	if err != nil {
		return nil
	}
	d, _ := h.(berthruntime.PortDialer)
	return d
}

// winSizes turns the library's resize events into the runtime's until ctx
// ends; nil in, nil out.
func winSizes(ctx context.Context, in <-chan remotecommand.TerminalSize) <-chan container.WinSize {
	if in == nil {
		return nil
	}
	out := make(chan container.WinSize, 1)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case sz, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- container.WinSize{Width: sz.Width, Height: sz.Height}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}
