package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
)

// The remote command protocol (v4.channel.k8s.io) as the streaming server
// speaks it: one SPDY stream per channel, named by a streamType header; the
// error stream carries a JSON status with the exit code.
const (
	streamProtocolV4 = "v4.channel.k8s.io"
	headerStreamType = "streamType"
)

// execStatus is the part of the status on the error stream we need.
type execStatus struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	Reason  string `json:"reason"`
	Details *struct {
		Causes []struct {
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"causes"`
	} `json:"details"`
}

// streamExec runs an interactive exec through berthd's streaming server:
// stdin always, a terminal (raw mode, resizes) with tty. It returns the
// command's exit code.
func (a *app) streamExec(ctx context.Context, id string, cmd []string, tty bool) (int, error) {
	req := &runtimeapi.ExecRequest{ContainerId: id, Cmd: cmd, Stdin: true, Stdout: true, Stderr: !tty, Tty: tty}
	resp, err := a.rt.Exec(ctx, req)
	if err != nil {
		return -1, err
	}
	return a.stream(ctx, resp.GetUrl(), streamOpts{stdin: true, stdout: true, stderr: !tty, tty: tty})
}

// streamOpts says which of the remote command's channels to open.
type streamOpts struct{ stdin, stdout, stderr, tty bool }

// stream joins this process's stdio to a remote command session at url
// (exec or attach) and returns the exit code the error stream reports.
func (a *app) stream(ctx context.Context, url string, o streamOpts) (int, error) {
	conn, err := dialStreaming(ctx, url, streamProtocolV4)
	if err != nil {
		return -1, err
	}
	defer conn.Close()

	newStream := func(kind string) (httpstream.Stream, error) {
		h := http.Header{}
		h.Set(headerStreamType, kind)
		return conn.CreateStream(h)
	}
	errStream, err := newStream("error")
	if err != nil {
		return -1, err
	}
	statusc := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(errStream, 1<<20))
		statusc <- b
	}()

	if o.tty {
		if restore, err := makeRaw(int(os.Stdin.Fd())); err == nil {
			defer restore()
		}
		resize, err := newStream("resize")
		if err != nil {
			return -1, err
		}
		stop := forwardResizes(int(os.Stdin.Fd()), resize)
		defer stop()
	}
	if o.stdin {
		stdin, err := newStream("stdin")
		if err != nil {
			return -1, err
		}
		go func() {
			_, _ = io.Copy(stdin, a.stdin)
			stdin.Close() // half-close: the command sees the end of its input
		}()
	}
	var outputs sync.WaitGroup
	copyOut := func(kind string, w io.Writer) error {
		s, err := newStream(kind)
		if err != nil {
			return err
		}
		outputs.Add(1)
		go func() {
			defer outputs.Done()
			_, _ = io.Copy(w, s)
		}()
		return nil
	}
	if o.stdout {
		if err := copyOut("stdout", a.stdout); err != nil {
			return -1, err
		}
	}
	if o.stderr {
		if err := copyOut("stderr", a.stderr); err != nil {
			return -1, err
		}
	}
	outputs.Wait()
	var raw []byte
	select {
	case raw = <-statusc:
	case <-ctx.Done():
		return -1, ctx.Err()
	}
	return execExitCode(raw)
}

// dialStreaming opens a SPDY connection to a streaming server URL,
// negotiating protocol.
func dialStreaming(ctx context.Context, url, protocol string) (httpstream.Connection, error) {
	rt, err := spdy.NewRoundTripper(nil)
	if err != nil {
		return nil, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return nil, err
	}
	hreq.Header.Add(httpstream.HeaderProtocolVersion, protocol)
	hresp, err := rt.RoundTrip(hreq)
	if err != nil {
		return nil, fmt.Errorf("connecting to the streaming server: %w", err)
	}
	conn, err := rt.NewConnection(hresp)
	if err != nil {
		return nil, fmt.Errorf("connecting to the streaming server: %w", err)
	}
	return conn, nil
}

// execExitCode reads the error stream's status: empty or Success is 0, a
// NonZeroExitCode carries the code, anything else is an error.
func execExitCode(raw []byte) (int, error) {
	if len(raw) == 0 {
		return 0, nil
	}
	var st execStatus
	if err := json.Unmarshal(raw, &st); err != nil {
		return -1, fmt.Errorf("exec: %s", raw)
	}
	if st.Status == "Success" {
		return 0, nil
	}
	if st.Reason == "NonZeroExitCode" && st.Details != nil {
		for _, c := range st.Details.Causes {
			if c.Reason == "ExitCode" {
				if code, err := strconv.Atoi(c.Message); err == nil {
					return code, nil
				}
			}
		}
	}
	return -1, errors.New("exec: " + st.Message)
}

// makeRaw puts the terminal fd into raw mode and returns the restore.
func makeRaw(fd int) (func(), error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, err
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}

// forwardResizes sends the terminal's size now and on every SIGWINCH, as
// the JSON lines the resize stream expects.
func forwardResizes(fd int, w io.Writer) (stop func()) {
	send := func() {
		ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ)
		if err != nil {
			return
		}
		b, _ := json.Marshal(struct{ Width, Height uint16 }{ws.Col, ws.Row})
		_, _ = w.Write(b)
	}
	send()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-sigs:
				send()
			}
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}
