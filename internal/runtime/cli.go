package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/errdefs"
)

// cli drives one OCI runtime binary through its runc-compatible command
// line (runc, runsc, crun...). It holds no state of its own: every call execs
// the binary, so a cli value is safe for concurrent use.
type cli struct {
	name string   // handler name, e.g. "runc", "runsc"; used in error messages
	path string   // binary
	root string   // --root state dir for this runtime (per berthd instance)
	args []string // extra global args (e.g. --systemd-cgroup, runsc flags), placed before the subcommand
}

// State is what the runtime reports about one container.
type State struct {
	ID      string    `json:"id"`
	Pid     int       `json:"pid"`
	Status  string    `json:"status"` // creating, created, running, paused, stopped
	Bundle  string    `json:"bundle"`
	Created time.Time `json:"created"`
}

// Container status values as the OCI runtime spec names them.
const (
	StatusCreating = "creating"
	StatusCreated  = "created"
	StatusRunning  = "running"
	StatusPaused   = "paused"
	StatusStopped  = "stopped"
)

// rtWaitDelay bounds how long a finished runtime command may keep its output
// pipes open through a leftover child before we stop waiting for them.
const rtWaitDelay = 5 * time.Second

// rtDefaultTimeout bounds a runtime command whose caller set no deadline
// (exit handling, cleanup after an abandoned call, reconcile at start): a
// runtime that hangs must not hold those for ever. A variable for tests.
var rtDefaultTimeout = time.Minute

// rtMaxMessage caps the runtime message carried in an error.
const rtMaxMessage = 4096

// GlobalArgs returns the arguments that go before every subcommand: the state
// root, JSON logging (so errors can be picked out of the output) and the
// handler's extra arguments. conmon gets them as --runtime-arg.
func (r *cli) GlobalArgs() []string {
	args := make([]string, 0, 4+len(r.args))
	if r.root != "" {
		args = append(args, "--root", r.root)
	}
	args = append(args, "--log-format", "json")
	return append(args, r.args...)
}

// Command is the binary and its global arguments, for conmon.
func (r *cli) Command() (string, []string) { return r.path, r.GlobalArgs() }

// Name names the runtime in messages: the handler's name, else the binary's.
func (r *cli) Name() string {
	if r.name != "" {
		return r.name
	}
	return filepath.Base(r.path)
}

// Message picks the runtime's error message out of its log output.
func (r *cli) Message(log []byte) string { return rtMessage(log, false) }

// Start runs the user process of a created container.
func (r *cli) Start(ctx context.Context, id string) error {
	_, err := r.rtRun(ctx, rtCall{sub: "start", id: id, args: []string{id}})
	return err
}

// StartWith is Start with extra global args for this start only.
func (r *cli) StartWith(ctx context.Context, id string, extra []string) error {
	_, err := r.rtRun(ctx, rtCall{sub: "start", id: id, args: []string{id}, globals: extra})
	return err
}

// Kill sends sig to the container's init process, or to all its processes
// when all is set (needed when the container shares a PID namespace).
func (r *cli) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	args := []string{}
	if all {
		args = append(args, "--all")
	}
	args = append(args, id, strconv.Itoa(int(sig)))
	_, err := r.rtRun(ctx, rtCall{sub: "kill", id: id, args: args})
	return err
}

// Delete removes the runtime's state of a container (and its cgroup). With
// force a running container is killed first. An absent container is not an
// error, so Delete can be repeated.
func (r *cli) Delete(ctx context.Context, id string, force bool) error {
	args := []string{}
	if force {
		args = append(args, "--force")
	}
	args = append(args, id)
	_, err := r.rtRun(ctx, rtCall{sub: "delete", id: id, args: args})
	if errdefs.IsNotFound(err) {
		return nil
	}
	return err
}

// State reports one container. An absent container gives an error wrapping
// errdefs.ErrNotFound.
func (r *cli) State(ctx context.Context, id string) (*State, error) {
	out, err := r.rtRun(ctx, rtCall{sub: "state", id: id, args: []string{id}})
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("%s state %s: decoding output %q: %w", r.Name(), id, rtTrim(out), err)
	}
	return &st, nil
}

// List reports every container under the runtime's root.
func (r *cli) List(ctx context.Context) ([]State, error) {
	out, err := r.rtRun(ctx, rtCall{sub: "list", args: []string{"--format", "json"}})
	if err != nil {
		return nil, err
	}
	var sts []State // runc prints "null" when there are none
	if err := json.Unmarshal(out, &sts); err != nil {
		return nil, fmt.Errorf("%s list: decoding output %q: %w", r.Name(), rtTrim(out), err)
	}
	return sts, nil
}

// Update applies new resource limits to a running container.
func (r *cli) Update(ctx context.Context, id string, res *specs.LinuxResources) error {
	if res == nil {
		return errdefs.Invalid("update of container " + id + ": no resources given")
	}
	data, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("update of container %s: encoding resources: %w", id, err)
	}
	_, err = r.rtRun(ctx, rtCall{sub: "update", id: id, args: []string{"--resources", "-", id}, stdin: bytes.NewReader(data)})
	return err
}

// rtCall is one runtime command line.
type rtCall struct {
	sub     string   // subcommand
	id      string   // container, for messages; empty for list
	args    []string // after the subcommand
	globals []string // extra global args, before the subcommand
	stdin   io.Reader
}

// rtRun execs the runtime and returns its stdout. On failure the error holds
// the runtime's own message and wraps errdefs.ErrNotFound when the runtime
// says the container does not exist.
func (r *cli) rtRun(ctx context.Context, c rtCall) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rtDefaultTimeout)
		defer cancel()
	}
	args := append(append(r.GlobalArgs(), c.globals...), c.sub)
	args = append(args, c.args...)
	cmd := exec.CommandContext(ctx, r.path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = c.stdin
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = rtWaitDelay
	if err := cmd.Run(); err != nil {
		return nil, r.rtError(ctx, c.sub, c.id, rtMessage(stderr.Bytes(), false), err)
	}
	return stdout.Bytes(), nil
}

// rtError builds "runc start abc: <runtime message>" and picks the error kind.
func (r *cli) rtError(ctx context.Context, sub, id, msg string, runErr error) error {
	what := r.Name() + " " + sub
	if id != "" {
		what += " " + id
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		kind := error(errdefs.ErrUnavailable)
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			kind = errdefs.ErrDeadlineExceeded
		}
		if msg != "" {
			return fmt.Errorf("%s: %s (%v): %w", what, msg, ctxErr, kind)
		}
		return fmt.Errorf("%s: %v: %w", what, ctxErr, kind)
	}
	if msg == "" {
		if runErr == nil {
			return errors.New(what + ": failed without a message")
		}
		return fmt.Errorf("%s: %w", what, runErr)
	}
	if rtIsNotExist(msg) {
		return fmt.Errorf("%s: %s: %w", what, msg, errdefs.ErrNotFound)
	}
	return fmt.Errorf("%s: %s", what, msg)
}

// rtIsNotExist recognises the runtimes' "no such container" messages
// (runc: "container does not exist"; runsc: "... does not exist" too).
func rtIsNotExist(msg string) bool {
	return strings.Contains(msg, "does not exist") || strings.Contains(msg, "container not found")
}

// rtLogLine is one line of a runtime's JSON log (logrus format).
type rtLogLine struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
}

// rtMessage extracts the runtime's error message. JSON lines at error level
// or worse win; with jsonOnly, plain text is ignored (it is the process's,
// not the runtime's).
func rtMessage(out []byte, jsonOnly bool) string {
	var msg string
	var plain []string
	for _, line := range bytes.Split(out, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var l rtLogLine
		if line[0] == '{' && json.Unmarshal(line, &l) == nil && l.Level != "" {
			switch l.Level {
			case "error", "fatal", "panic":
				msg = l.Msg
			}
			continue
		}
		plain = append(plain, string(line))
	}
	if msg == "" && !jsonOnly {
		msg = strings.Join(plain, "; ")
	}
	if len(msg) > rtMaxMessage {
		msg = msg[:rtMaxMessage] + "..."
	}
	return msg
}

func rtTrim(b []byte) string {
	if len(b) > 256 {
		return string(b[:256]) + "..."
	}
	return string(b)
}
