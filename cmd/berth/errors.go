package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Exit codes follow docker's: 125 when berth or the runtime failed, the
// command's own status otherwise, 126 when the command cannot be invoked,
// 127 when it is not found.
const (
	exitBerth        = 125
	exitCannotInvoke = 126
	exitCmdNotFound  = 127
)

// exitError ends the program with code; err, when set, is printed first
// (nil when the command already said what it had to, as exec and run do
// when they pass on their command's status).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return fmt.Sprintf("exit status %d", e.code)
}

func (e *exitError) Unwrap() error { return e.err }

// exitCode is the process status for an error a verb returned.
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitBerth
}

// dialRecorder remembers how the last dial of the socket went, so that an
// Unavailable can be told apart: a daemon that cannot be reached (no
// connection was ever made) or one that went away mid-call, versus a
// daemon that answered Unavailable about something else (a registry down).
type dialRecorder struct {
	mu        sync.Mutex
	connected bool  // a dial has succeeded
	err       error // the last dial's error
}

func (r *dialRecorder) dial(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
	if err == nil {
		r.connected = true
	}
	return conn, err
}

func (r *dialRecorder) state() (connected bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.connected, r.err
}

// rpcError is a gRPC error in words: it prints as what happened (never "rpc
// error: code = ...") and still answers status.Code.
type rpcError struct {
	st  *status.Status
	msg string
}

func (e *rpcError) Error() string              { return e.msg }
func (e *rpcError) GRPCStatus() *status.Status { return e.st }

// transportMessages are grpc-go's own texts for a connection that broke
// during a call; a daemon's answer does not look like these.
var transportMessages = []string{
	"error reading from server",
	"transport is closing",
	"connection error",
	"connection reset by peer",
	"broken pipe",
	"the connection is draining",
}

// nestedStatus finds "rpc error: code = X desc = " inside messages (a
// runtime passing on another's error), to be dropped.
var nestedStatus = regexp.MustCompile(`rpc error: code = \w+ desc = `)

// describe turns a gRPC status into the sentence berth prints. ep is the
// endpoint called; dial tells whether the socket was ever reached.
func describe(st *status.Status, ep endpoint, timeout string, dial *dialRecorder) string {
	msg := nestedStatus.ReplaceAllString(st.Message(), "")
	daemon := daemonName(ep)
	switch st.Code() {
	case codes.Unavailable:
		connected, dialErr := dial.state()
		if !connected {
			return fmt.Sprintf("cannot reach %s at %s%s: %s", daemon, ep.addr, ep.from(), dialReason(dialErr, msg, ep, daemon))
		}
		for _, t := range transportMessages {
			if strings.Contains(msg, t) {
				return fmt.Sprintf("lost the connection to %s at %s: did it stop or crash? (%s)", daemon, ep.addr, unquoteDesc(msg))
			}
		}
		// The daemon answered: its message says what is unavailable.
		return orWord(msg, "unavailable; retry later")
	case codes.DeadlineExceeded:
		if msg == "" || msg == context.DeadlineExceeded.Error() {
			return fmt.Sprintf("timed out after %s (raise --timeout?)", timeout)
		}
		return msg + " (timed out; raise --timeout?)"
	case codes.Canceled:
		if msg == "" || msg == context.Canceled.Error() {
			return "cancelled"
		}
		return msg
	case codes.Unimplemented:
		return fmt.Sprintf("%s does not support this: %s", daemon, orWord(msg, "not implemented"))
	case codes.Internal:
		return "internal error in " + daemon + ": " + orWord(msg, "no details")
	case codes.ResourceExhausted:
		return "out of resources: " + orWord(msg, "no details")
	case codes.PermissionDenied:
		return "permission denied: " + orWord(msg, "no details")
	case codes.Unauthenticated:
		return "not authenticated: " + orWord(msg, "no details")
	}
	return orWord(msg, plainCode(st.Code()))
}

// plainCode is a gRPC code in words, for a status without a message.
func plainCode(c codes.Code) string {
	switch c {
	case codes.NotFound:
		return "not found"
	case codes.AlreadyExists:
		return "already exists"
	case codes.InvalidArgument:
		return "invalid request"
	case codes.FailedPrecondition:
		return "not possible in the current state"
	case codes.Aborted:
		return "aborted; retry"
	case codes.OutOfRange:
		return "out of range"
	case codes.DataLoss:
		return "data lost"
	}
	return "failed"
}

func orWord(msg, word string) string {
	if msg == "" {
		return word
	}
	return msg
}

// daemonName is how messages name the runtime: berthd, unless the socket
// is plainly another runtime's (containerd, CRI-O, cri-dockerd).
func daemonName(ep endpoint) string {
	for _, other := range []string{"containerd", "crio", "cri-dockerd", "dockershim"} {
		if strings.Contains(ep.path(), other) {
			return "the runtime"
		}
	}
	return "berthd"
}

// dialReason says why the socket could not be reached, in words.
func dialReason(err error, msg string, ep endpoint, daemon string) string {
	switch {
	case err == nil:
		return unquoteDesc(msg)
	case errors.Is(err, syscall.ENOENT):
		return fmt.Sprintf("no socket at %s; is %s running?", ep.path(), daemon)
	case errors.Is(err, syscall.ECONNREFUSED) && !isSocket(ep.path()):
		return fmt.Sprintf("%s is not a socket", ep.path())
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("nothing listens on %s; %s is not running (the socket is left from an earlier run)", ep.path(), daemon)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fmt.Sprintf("permission denied on %s; run as root or as a member of the socket's group", ep.path())
	}
	return err.Error()
}

func isSocket(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode()&fs.ModeSocket != 0
}

// unquoteDesc undoes grpc's `connection error: desc = "..."` wrapping.
func unquoteDesc(msg string) string {
	msg = strings.TrimPrefix(msg, "connection error: desc = ")
	return strings.Trim(msg, `"`)
}

// withInvokeCode gives err the exit status 126 or 127 when it says that the
// command cannot be invoked or is not found, as docker run does.
func withInvokeCode(err error) error {
	if code := invokeFailure(err); code != 0 {
		return &exitError{code: code, err: err}
	}
	return err
}

// invokeFailure maps a runtime's refusal to start a command to docker's
// 126/127, or 0 when err is not about the command itself.
func invokeFailure(err error) int {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "executable file not found"),
		strings.Contains(msg, "exec:") && strings.Contains(msg, "no such file or directory"):
		return exitCmdNotFound
	case strings.Contains(msg, "exec:") && strings.Contains(msg, "permission denied"),
		strings.Contains(msg, "exec format error"):
		return exitCannotInvoke
	}
	return 0
}
