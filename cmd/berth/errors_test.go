package main

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestErrorWording checks what berth prints for the ways a call fails: a
// daemon that is not there (no socket, a stale one) must read differently
// from a daemon that answered Unavailable about a registry, and no gRPC
// code syntax reaches the user.
func TestErrorWording(t *testing.T) {
	f := sampleCRI()
	f.pullErr = status.Error(codes.Unavailable, "127.0.0.1:5999 is unreachable: Get \"http://127.0.0.1:5999/v2/\": dial tcp 127.0.0.1:5999: connect: connection refused (unavailable)")
	ep := startFake(t, f)

	_, errOut, code := berth(t, ep, "pull", "127.0.0.1:5999/busybox")
	want := "berth: pulling 127.0.0.1:5999/busybox: 127.0.0.1:5999 is unreachable: Get \"http://127.0.0.1:5999/v2/\": dial tcp 127.0.0.1:5999: connect: connection refused (unavailable)\n"
	if code != 125 || errOut != want {
		t.Errorf("pull from a registry that is down: code %d\n%q\nwant\n%q", code, errOut, want)
	}

	dir := t.TempDir()
	missing := filepath.Join(dir, "berth.sock")
	_, errOut, code = berth(t, "unix://"+missing, "version")
	want = "berth: version: cannot reach berthd at unix://" + missing + " (from --socket): no socket at " + missing + "; is berthd running?\n"
	if code != 125 || errOut != want {
		t.Errorf("no socket: code %d\n%q\nwant\n%q", code, errOut, want)
	}

	// A socket file nobody listens on, as a killed daemon leaves it.
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	_, errOut, code = berth(t, stale, "pods")
	want = "berth: listing pods: cannot reach berthd at unix://" + stale + " (from --socket): nothing listens on " + stale + "; berthd is not running (the socket is left from an earlier run)\n"
	if code != 125 || errOut != want {
		t.Errorf("stale socket: code %d\n%q\nwant\n%q", code, errOut, want)
	}

	// Not a socket at all.
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = berth(t, plain, "version")
	if code != 125 || !strings.HasSuffix(errOut, ": "+plain+" is not a socket\n") {
		t.Errorf("plain file: code %d %q", code, errOut)
	}

	// Usage errors are berth's own: 125 too.
	_, errOut, code = berth(t, ep, "ps", "--no-such-flag")
	if code != 125 || !strings.Contains(errOut, "unknown flag: --no-such-flag (see 'berth ps --help')") {
		t.Errorf("bad flag: code %d %q", code, errOut)
	}
}

func TestDescribe(t *testing.T) {
	ep := endpoint{addr: "unix:///run/berth/berth.sock", source: "default"}
	up := &dialRecorder{connected: true}
	down := &dialRecorder{err: &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.ENOENT)}}
	tests := []struct {
		name string
		st   *status.Status
		dial *dialRecorder
		want string
	}{
		{"daemon down", status.New(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial unix /run/berth/berth.sock: connect: no such file or directory"`), down,
			"cannot reach berthd at unix:///run/berth/berth.sock: no socket at /run/berth/berth.sock; is berthd running?"},
		{"answered unavailable", status.New(codes.Unavailable, "berthd is starting: recovering its records"), up,
			"berthd is starting: recovering its records"},
		{"lost mid-call", status.New(codes.Unavailable, "error reading from server: EOF"), up,
			"lost the connection to berthd at unix:///run/berth/berth.sock: did it stop or crash? (error reading from server: EOF)"},
		{"client deadline", status.New(codes.DeadlineExceeded, "context deadline exceeded"), up, "timed out after 10s (raise --timeout?)"},
		{"unimplemented", status.New(codes.Unimplemented, "unknown method CheckpointContainer"), up, "berthd does not support this: unknown method CheckpointContainer"},
		{"nested status", status.New(codes.Unknown, "create failed: rpc error: code = NotFound desc = image x not found"), up, "create failed: image x not found"},
		{"empty message", status.New(codes.NotFound, ""), up, "not found"},
		{"internal", status.New(codes.Internal, "boom"), up, "internal error in berthd: boom"},
	}
	for _, tt := range tests {
		if got := describe(tt.st, ep, "10s", tt.dial); got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
	other := endpoint{addr: "unix:///run/containerd/containerd.sock", source: "$CONTAINER_RUNTIME_ENDPOINT"}
	got := describe(status.New(codes.Unavailable, "x"), other, "10s", &dialRecorder{err: os.NewSyscallError("connect", syscall.ENOENT)})
	want := "cannot reach the runtime at unix:///run/containerd/containerd.sock (from $CONTAINER_RUNTIME_ENDPOINT): no socket at /run/containerd/containerd.sock; is the runtime running?"
	if got != want {
		t.Errorf("containerd:\n got %q\nwant %q", got, want)
	}
}

func TestInvokeFailure(t *testing.T) {
	tests := map[string]int{
		`runc create failed: unable to start container process: exec: "nope": executable file not found in $PATH`: 127,
		`exec: "/bin/nope": stat /bin/nope: no such file or directory`:                                            127,
		`unable to start container process: exec: "/etc/passwd": permission denied`:                               126,
		`image busybox not found`:                  0,
		`mount /x: permission denied`:              0,
		`no such file or directory: /var/log/pods`: 0,
	}
	for msg, want := range tests {
		if got := invokeFailure(errors.New(msg)); got != want {
			t.Errorf("%q: %d, want %d", msg, got, want)
		}
	}
}
