package container

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/runtime"
)

// WinSize is a terminal size in character cells.
type WinSize = runtime.WinSize

// ExecOptions describes a command run in a running container with its
// stdio streamed (CRI Exec).
type ExecOptions struct {
	Cmd    []string
	Stdin  io.Reader // nil: no input
	Stdout io.Writer // nil: discarded
	Stderr io.Writer // nil: discarded; unused with TTY
	TTY    bool
	Resize <-chan WinSize
}

// ExecSyncRequest is a command run to completion with its output collected
// (CRI ExecSync, kubelet's exec probes).
type ExecSyncRequest struct {
	Cmd     []string
	Timeout time.Duration // 0: none
	// MaxOutput caps what is kept of stdout and stderr together (kubelet
	// takes one response of at most 16 MiB); the rest is read and dropped
	// so the process never blocks on a full pipe.
	MaxOutput int
}

// ExecSyncResult is what an ExecSync collected.
type ExecSyncResult struct {
	Stdout, Stderr []byte
	ExitCode       int
	Truncated      bool // output went past MaxOutput
}

// Exec runs a command in a running container, streaming its stdio, and
// returns its exit code. A command that cannot be started exits 126/127
// with the runtime's message on its stderr. When ctx ends (the client went
// away) the process is killed and reaped before Exec returns.
func (s *Service) Exec(ctx context.Context, id string, o ExecOptions) (int, error) {
	rt, proc, err := s.execProcess(id, o.Cmd, o.TTY)
	if err != nil {
		return -1, err
	}
	s.log.Debug("exec", "container", id, "cmd", o.Cmd, "tty", o.TTY)
	return rt.Exec(ctx, id, runtime.ExecOptions{
		Process: proc, Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr,
		Resize: o.Resize, PidFile: s.execPidFile(id),
	})
}

// ExecSync runs a command in a running container to completion. Only the
// OCI runtime's exec runs: no monitor process. When the timeout passes, the
// process is killed and reaped, then the call fails with a DeadlineExceeded
// error, as kubelet expects of a probe that timed out.
func (s *Service) ExecSync(ctx context.Context, id string, req ExecSyncRequest) (*ExecSyncResult, error) {
	rt, proc, err := s.execProcess(id, req.Cmd, false)
	if err != nil {
		return nil, err
	}
	limit := req.MaxOutput
	if limit <= 0 {
		limit = 16 << 20
	}
	budget := &outputBudget{room: limit}
	stdout, stderr := &cappedBuffer{budget: budget}, &cappedBuffer{budget: budget}
	execCtx := ctx
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		execCtx, cancel = context.WithTimeout(ctx, req.Timeout)
		defer cancel()
	}
	code, err := rt.Exec(execCtx, id, runtime.ExecOptions{
		Process: proc, Stdout: stdout, Stderr: stderr, PidFile: s.execPidFile(id),
	})
	if err != nil {
		if ctx.Err() == nil && errors.Is(execCtx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("command %q in container %s timed out after %v; it was killed: %w",
				strings.Join(req.Cmd, " "), id, req.Timeout, errdefs.ErrDeadlineExceeded)
		}
		return nil, err
	}
	res := &ExecSyncResult{Stdout: stdout.buf.Bytes(), Stderr: stderr.buf.Bytes(), ExitCode: code,
		Truncated: stdout.dropped > 0 || stderr.dropped > 0}
	if res.Truncated {
		s.log.Warn("exec output truncated", "container", id, "cmd", req.Cmd, "limit", limit,
			"stdoutDropped", stdout.dropped, "stderrDropped", stderr.dropped)
	}
	return res, nil
}

// execProcess checks the container can take an exec and builds the process
// from the container's own: environment, user, working directory,
// capabilities, LSM labels and no_new_privs as for the container (seccomp
// and cgroups the runtime applies from the container itself).
func (s *Service) execProcess(id string, cmd []string, tty bool) (runtime.Handler, *specs.Process, error) {
	if len(cmd) == 0 {
		return nil, nil, errdefs.Invalid("cmd is required")
	}
	c, err := s.Get(id)
	if err != nil {
		return nil, nil, err
	}
	if c.State != Running {
		return nil, nil, errdefs.Precondition(fmt.Sprintf("container %s is %s, not running; exec needs a running container", id, c.State))
	}
	rt, err := s.runtime(c.Runtime)
	if err != nil {
		return nil, nil, err
	}
	tmpl, err := c.exec.process(s.bundleDir(id))
	if err != nil {
		return nil, nil, fmt.Errorf("exec in container %s: %w", id, err)
	}
	proc := *tmpl
	proc.Args = cmd
	proc.Terminal = tty
	proc.ConsoleSize = nil
	proc.CommandLine = ""
	if tty && !hasEnv(proc.Env, "TERM") {
		// What a terminal session expects; kubectl does not send it.
		proc.Env = append(append([]string(nil), proc.Env...), "TERM=xterm")
	}
	return rt, &proc, nil
}

// execPidFile is a fresh pid file path for one exec, in the container's
// bundle dir (removed with it).
func (s *Service) execPidFile(id string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return filepath.Join(s.bundleDir(id), "exec-"+hex.EncodeToString(b[:])+".pid")
}

func hasEnv(env []string, key string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, key+"=") {
			return true
		}
	}
	return false
}

// outputBudget is the room left for an exec's output, shared by its
// stdout and stderr, which are copied by goroutines of their own.
type outputBudget struct {
	mu   sync.Mutex
	room int
}

// take reserves up to n bytes and returns how many it got.
func (b *outputBudget) take(n int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n = min(n, b.room)
	b.room -= n
	return n
}

// cappedBuffer keeps what fits in its budget and counts the rest.
type cappedBuffer struct {
	budget  *outputBudget
	buf     bytes.Buffer
	dropped int64
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	n := c.budget.take(len(p))
	c.buf.Write(p[:n])
	c.dropped += int64(len(p) - n)
	return len(p), nil
}
