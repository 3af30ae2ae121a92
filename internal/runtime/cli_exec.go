package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/host"
)

// WinSize is a terminal size in character cells.
type WinSize struct {
	Width, Height uint16
}

// ExecOptions describes one process run inside a running container.
type ExecOptions struct {
	// Process is what to run, usually the container's own process with
	// other Args. Terminal gives it a pseudo-terminal.
	Process *specs.Process
	// Stdin feeds the process; nil gives it /dev/null (no terminal) or no
	// input (terminal). With a terminal, the end of Stdin types ^D.
	Stdin io.Reader
	// Stdout and Stderr receive its output; nil discards it. With a
	// terminal everything arrives on Stdout.
	Stdout, Stderr io.Writer
	// Resize carries terminal size changes; nil when there are none.
	Resize <-chan WinSize
	// PidFile is where the runtime records the process's pid, so that a
	// timeout or a lost client can kill exactly that process. Required;
	// removed when the exec ends.
	PidFile string
}

// Exit codes a shell uses when a command cannot run; an exec whose command
// the runtime cannot start reports them, with the runtime's message on the
// process's stderr.
const (
	ExitNotExecutable = 126
	ExitNotFound      = 127
)

// execKillGrace bounds each wait while ending an exec: for the runtime to
// write the pid file, and for it to exit once its process is killed.
const execKillGrace = 5 * time.Second

// ExecProcess runs o.Process inside the running container id, copying its
// stdio, and waits for it. It answers with the process's exit code; err is
// set only when the exec itself failed. A command that cannot be started
// (missing, not executable) is not an error: the runtime's message goes to
// the process's stderr and the code is 127 or 126, as a shell does.
//
// When ctx ends, or the process's output can no longer be delivered (the
// client went away), the process and its session are killed with SIGKILL
// and reaped before ExecProcess returns; the error then wraps ctx's error.
//
// Nothing runs besides the runtime's own exec: runc stays in the foreground
// as the process's parent, reaps it and exits with its status. For a
// terminal, the runtime gets a pseudo-terminal of ours as its stdio (runc
// takes --console-socket only together with --detach, which would orphan the
// process and lose its exit status); runc makes its own terminal for the
// process and relays between the two, as it does for CRI-O.
func (r *cli) ExecProcess(ctx context.Context, id string, o ExecOptions) (int, error) {
	return r.execProcess(ctx, id, o, nil)
}

// innerKill ends an exec'd process that is no host process (gVisor's live
// in its Sentry): the runtime records the process's pid inside the sandbox
// in pidFile (its --internal-pid-file), and kill signals it there.
type innerKill struct {
	pidFile string
	kill    func(pid int)
}

func (r *cli) execProcess(ctx context.Context, id string, o ExecOptions, inner *innerKill) (int, error) {
	if o.Process == nil || len(o.Process.Args) == 0 {
		return -1, errdefs.Invalid("exec in container " + id + ": no command given")
	}
	if !filepath.IsAbs(o.PidFile) {
		return -1, errdefs.Invalid("exec in container " + id + ": pid file path must be absolute")
	}
	spec, err := json.Marshal(o.Process)
	if err != nil {
		return -1, fmt.Errorf("exec in container %s: encoding process: %w", id, err)
	}
	x := &execRun{rt: r, id: id, o: o, inner: inner}
	defer x.closeAll()
	defer os.Remove(o.PidFile)
	if inner != nil {
		defer os.Remove(inner.pidFile)
	}
	if err := x.start(spec); err != nil {
		return -1, err
	}
	return x.wait(ctx)
}

// execRun is one runtime exec in flight.
type execRun struct {
	rt    *cli
	id    string
	o     ExecOptions
	inner *innerKill // nil: the pid file names the process itself

	cmd    *exec.Cmd
	done   chan struct{} // closed once the runtime has exited
	waitEr error

	parentFiles []*os.File // our ends: closed when the exec ends
	childFiles  []*os.File // the runtime's ends: closed once it started
	master      *os.File   // terminal master, when there is a terminal

	outputs  sync.WaitGroup // copies of the process's output
	errBytes atomic.Int64   // bytes copied to stderr (the terminal's output with one)
	failOnce sync.Once
	failed   chan struct{} // closed when output could not be delivered
	failErr  error
	logOut   chan []byte
}

func (x *execRun) start(spec []byte) (retErr error) {
	r := x.rt
	x.done = make(chan struct{})
	x.failed = make(chan struct{})
	x.logOut = make(chan []byte, 1)
	defer func() {
		for _, f := range x.childFiles {
			f.Close()
		}
		x.childFiles = nil
	}()

	// The process spec and the runtime's own log travel through pipes
	// handed over as fds 3 and 4: no temporary files, and the runtime's
	// messages stay apart from the process's output.
	specR, specW, err := x.pipe(true)
	if err != nil {
		return err
	}
	logR, logW, err := x.pipe(false)
	if err != nil {
		return err
	}
	args := append(r.GlobalArgs(), "--log", "/proc/self/fd/4", "exec", "--process", "/proc/self/fd/3", "--pid-file", x.o.PidFile)
	if x.inner != nil {
		args = append(args, "--internal-pid-file", x.inner.pidFile)
	}
	args = append(args, x.id)
	cmd := exec.Command(r.path, args...)
	cmd.ExtraFiles = []*os.File{specR, logW}
	x.cmd = cmd

	if x.o.Process.Terminal {
		if err := x.setupTerminal(cmd); err != nil {
			return err
		}
	} else if err := x.setupPipes(cmd); err != nil {
		return err
	}

	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s exec %s: %w", r.Name(), x.id, err)
	}
	go func() {
		x.waitEr = cmd.Wait()
		close(x.done)
	}()
	go func() {
		_, _ = specW.Write(spec) // the runtime fails loudly on a short spec
		specW.Close()
	}()
	go func() {
		b, _ := io.ReadAll(io.LimitReader(logR, 1<<20))
		_, _ = io.Copy(io.Discard, logR)
		x.logOut <- b
	}()
	return nil
}

// pipe makes a pipe whose read end goes to the runtime (childReads: for its
// spec) or whose write end does (for its log). The runtime's end is closed
// here once it started, ours by closeAll.
func (x *execRun) pipe(childReads bool) (r, w *os.File, err error) {
	r, w, err = os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("exec in container %s: %w", x.id, err)
	}
	if childReads {
		x.childFiles = append(x.childFiles, r)
		x.parentFiles = append(x.parentFiles, w)
	} else {
		x.childFiles = append(x.childFiles, w)
		x.parentFiles = append(x.parentFiles, r)
	}
	return r, w, nil
}

// setupPipes connects the process's stdio through pipes.
func (x *execRun) setupPipes(cmd *exec.Cmd) error {
	if x.o.Stdin != nil {
		pr, pw, err := os.Pipe()
		if err != nil {
			return fmt.Errorf("exec in container %s: %w", x.id, err)
		}
		x.childFiles = append(x.childFiles, pr)
		x.parentFiles = append(x.parentFiles, pw)
		cmd.Stdin = pr
		// Not waited for: a client may never end its stdin; closeAll
		// makes the next write fail once the exec is over.
		go func() {
			_, _ = io.Copy(pw, x.o.Stdin)
			pw.Close()
		}()
	}
	for _, s := range []struct {
		w   io.Writer
		dst *io.Writer
	}{{x.o.Stdout, &cmd.Stdout}, {x.o.Stderr, &cmd.Stderr}} {
		if s.w == nil {
			continue
		}
		pr, pw, err := os.Pipe()
		if err != nil {
			return fmt.Errorf("exec in container %s: %w", x.id, err)
		}
		x.childFiles = append(x.childFiles, pw)
		x.parentFiles = append(x.parentFiles, pr)
		*s.dst = pw
		x.copyOutput(s.w, pr, s.dst == &cmd.Stderr)
	}
	return nil
}

// setupTerminal gives the runtime a pseudo-terminal as its stdio.
func (x *execRun) setupTerminal(cmd *exec.Cmd) error {
	master, slave, err := openPty()
	if err != nil {
		return fmt.Errorf("exec in container %s: %w", x.id, err)
	}
	x.master = master
	x.parentFiles = append(x.parentFiles, master)
	x.childFiles = append(x.childFiles, slave)
	if cs := x.o.Process.ConsoleSize; cs != nil {
		_ = setWinsize(master, WinSize{Width: uint16(cs.Width), Height: uint16(cs.Height)})
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	// The terminal becomes the runtime's controlling terminal, so a size
	// change reaches it as SIGWINCH and it passes the size on.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if x.o.Stdin != nil {
		go func() {
			if _, err := io.Copy(master, x.o.Stdin); err == nil {
				// End of input: ^D, which the process's terminal
				// turns into end-of-file.
				_, _ = master.Write([]byte{4})
			}
		}()
	}
	out := x.o.Stdout
	if out == nil {
		out = io.Discard
	}
	x.copyOutput(out, master, true)
	if x.o.Resize != nil {
		go x.resizeLoop()
	}
	return nil
}

func (x *execRun) resizeLoop() {
	for {
		select {
		case <-x.done:
			return
		case ws, ok := <-x.o.Resize:
			if !ok {
				return
			}
			if err := setWinsize(x.master, ws); err != nil {
				continue
			}
			// The kernel signals the terminal's foreground group;
			// say it again in case the runtime has not taken the
			// terminal yet.
			if p := x.cmd.Process; p != nil {
				_ = p.Signal(syscall.SIGWINCH)
			}
		}
	}
}

// copyOutput copies from the process to w. A write error means nobody
// receives the output any more: the exec is ended rather than left blocked.
func (x *execRun) copyOutput(w io.Writer, from *os.File, isErr bool) {
	x.outputs.Add(1)
	go func() {
		defer x.outputs.Done()
		n, err := io.Copy(writerOnly{w}, from)
		if isErr {
			x.errBytes.Add(n)
		}
		var werr writeError
		if errors.As(err, &werr) {
			x.fail(werr.err)
		}
	}()
}

func (x *execRun) fail(err error) {
	x.failOnce.Do(func() {
		x.failErr = err
		close(x.failed)
	})
}

// wait waits for the runtime to exit, ending the process when ctx ends or
// its output cannot be delivered, and interprets the result.
func (x *execRun) wait(ctx context.Context) (int, error) {
	r := x.rt
	var endErr error
	select {
	case <-x.done:
	case <-ctx.Done():
		endErr = ctx.Err()
		x.terminate()
	case <-x.failed:
		endErr = fmt.Errorf("delivering the process's output: %w", x.failErr)
		x.terminate()
	}
	// The runtime is gone and its process reaped. Output still buffered in
	// the pipes is copied; a background child holding them open is not
	// waited for past the grace period.
	outDone := make(chan struct{})
	go func() { x.outputs.Wait(); close(outDone) }()
	select {
	case <-outDone:
	case <-time.After(rtWaitDelay):
		x.closeAll()
		<-outDone
	}
	var logOut []byte
	select {
	case logOut = <-x.logOut:
	case <-time.After(rtWaitDelay):
	}
	if endErr != nil {
		kind := error(errdefs.ErrUnavailable)
		if errors.Is(endErr, context.DeadlineExceeded) {
			kind = errdefs.ErrDeadlineExceeded
		}
		return -1, fmt.Errorf("%s exec %s: process killed: %w (%w)", r.Name(), x.id, endErr, kind)
	}
	if msg := rtMessage(logOut, true); msg != "" {
		if code, ok := execStartFailure(msg); ok {
			x.reportStartFailure(msg)
			return code, nil
		}
		if strings.Contains(msg, "cannot exec in a stopped container") || strings.Contains(msg, "cannot exec in a paused container") {
			return -1, fmt.Errorf("%s exec %s: %s: %w", r.Name(), x.id, msg, errdefs.ErrFailedPrecondition)
		}
		return -1, r.rtError(ctx, "exec", x.id, msg, x.waitEr)
	}
	if x.waitEr == nil {
		return 0, nil
	}
	var exitErr *exec.ExitError
	if errors.As(x.waitEr, &exitErr) && exitErr.Exited() {
		return exitErr.ExitCode(), nil
	}
	return -1, r.rtError(ctx, "exec", x.id, "", x.waitEr)
}

// reportStartFailure writes the runtime's reason to the process's stderr
// (its terminal when it has one), where a shell would have put it, unless
// the runtime already did (runc prints its fatal error there too).
func (x *execRun) reportStartFailure(msg string) {
	if x.errBytes.Load() > 0 {
		return
	}
	w := x.o.Stderr
	nl := "\n"
	if x.o.Process.Terminal {
		w, nl = x.o.Stdout, "\r\n"
	}
	if w != nil {
		_, _ = io.WriteString(w, msg+nl)
	}
}

// execStartFailure recognises the runtime's "could not start the process"
// messages and gives the exit code a shell would use.
func execStartFailure(msg string) (int, bool) {
	if !strings.Contains(msg, "unable to start container process") && !strings.Contains(msg, "exec failed: ") {
		return 0, false
	}
	if strings.Contains(msg, "no such file or directory") || strings.Contains(msg, "not found") {
		return ExitNotFound, true
	}
	return ExitNotExecutable, true
}

// terminate kills the exec'd process (its whole session) once the runtime
// has recorded its pid, and waits for the runtime to reap it and exit. A
// runtime that never gets that far is killed itself.
func (x *execRun) terminate() {
	deadline := time.Now().Add(execKillGrace)
	for {
		if pid, err := readExecPid(x.o.PidFile); err == nil {
			if x.inner != nil {
				// The runtime writes the inner pid first.
				if ipid, err := readExecPid(x.inner.pidFile); err == nil {
					x.inner.kill(ipid)
				}
			}
			killSession(pid)
			select {
			case <-x.done:
				return
			case <-time.After(execKillGrace):
			}
			break
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-x.done:
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
	_ = x.cmd.Process.Kill()
	<-x.done
}

func readExecPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("pid file %s holds %q", path, b)
	}
	return pid, nil
}

// killSession SIGKILLs pid and every process in its session or process
// group. The runtime makes each exec'd process a session leader, so this
// takes a shell's children with it. Our own session is never touched.
func killSession(pid int) {
	if pid <= 1 || pid == os.Getpid() {
		return
	}
	if own, err := unix.Getsid(0); err == nil && own == pid {
		return
	}
	_ = unix.Kill(pid, unix.SIGKILL)
	for _, p := range host.Find(func(p host.Proc) bool {
		st, err := p.Stat()
		return err == nil && p.PID != pid && (st.Pgrp == pid || st.Session == pid)
	}) {
		_ = unix.Kill(p, unix.SIGKILL)
	}
}

func (x *execRun) closeAll() {
	for _, f := range x.parentFiles {
		f.Close()
	}
	for _, f := range x.childFiles {
		f.Close()
	}
}

// writerOnly hides ReaderFrom/WriterTo so io.Copy's errors say which side
// failed.
type writerOnly struct{ w io.Writer }

type writeError struct{ err error }

func (e writeError) Error() string { return e.err.Error() }

func (w writerOnly) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		return n, writeError{err}
	}
	return n, nil
}
