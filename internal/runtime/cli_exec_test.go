package runtime

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/errdefs"
)

func TestExecStartFailure(t *testing.T) {
	for msg, want := range map[string]int{
		`exec failed: unable to start container process: exec: "/x": stat /x: no such file or directory`: ExitNotFound,
		`exec failed: unable to start container process: exec: "x": executable file not found in $PATH`:  ExitNotFound,
		`exec failed: unable to start container process: exec: "/bin": permission denied`:                ExitNotExecutable,
	} {
		if got, ok := execStartFailure(msg); !ok || got != want {
			t.Errorf("execStartFailure(%q) = %d %v, want %d", msg, got, ok, want)
		}
	}
	if _, ok := execStartFailure("container does not exist"); ok {
		t.Error("a missing container counted as a start failure")
	}
}

// procsWithArg lists host pids whose command line has arg.
func procsWithArg(arg string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte("\x00"+arg+"\x00")) {
			out = append(out, e.Name())
		}
	}
	return out
}

// syncBuffer is a bytes.Buffer safe to read while the exec writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestExecProcess(t *testing.T) {
	r := rtTestRuntime(t)
	ctx := context.Background()
	id := rtTestID("exec")
	rtTestCreate(t, r, id, "while true; do sleep 0.1; done")
	if err := r.Start(ctx, id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	rtWaitStatus(t, r, id, StatusRunning)
	pidFile := filepath.Join(t.TempDir(), "exec.pid")
	proc := func(tty bool, args ...string) *specs.Process {
		return &specs.Process{Args: args, Env: []string{"PATH=/bin"}, Cwd: "/", Terminal: tty}
	}

	t.Run("output and exit code", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		code, err := r.ExecProcess(ctx, id, ExecOptions{Process: proc(false, "sh", "-c", "echo hi; echo oops >&2; exit 5"), Stdout: &stdout, Stderr: &stderr, PidFile: pidFile})
		if err != nil || code != 5 || stdout.String() != "hi\n" || stderr.String() != "oops\n" {
			t.Fatalf("= %d, %v; stdout %q stderr %q", code, err, stdout.String(), stderr.String())
		}
		if _, err := os.Stat(pidFile); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pid file left: %v", err)
		}
	})

	t.Run("missing command", func(t *testing.T) {
		var stderr bytes.Buffer
		code, err := r.ExecProcess(ctx, id, ExecOptions{Process: proc(false, "/nonexistent"), Stderr: &stderr, PidFile: pidFile})
		if err != nil || code != ExitNotFound || !strings.Contains(stderr.String(), "/nonexistent") {
			t.Fatalf("= %d, %v; stderr %q", code, err, stderr.String())
		}
	})

	t.Run("stdin", func(t *testing.T) {
		var stdout bytes.Buffer
		code, err := r.ExecProcess(ctx, id, ExecOptions{Process: proc(false, "busybox", "cat"), Stdin: strings.NewReader("abc\ndef\n"), Stdout: &stdout, PidFile: pidFile})
		if err != nil || code != 0 || stdout.String() != "abc\ndef\n" {
			t.Fatalf("= %d, %v; stdout %q", code, err, stdout.String())
		}
	})

	t.Run("deadline kills the session", func(t *testing.T) {
		tctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		t0 := time.Now()
		code, err := r.ExecProcess(tctx, id, ExecOptions{Process: proc(false, "sh", "-c", "sleep 3101 & sleep 3102; true"), Stdout: io.Discard, PidFile: pidFile})
		if !errors.Is(err, errdefs.ErrDeadlineExceeded) || time.Since(t0) > 3*time.Second {
			t.Fatalf("= %d, %v after %v", code, err, time.Since(t0))
		}
		// The foreground child is gone at once; the background one is
		// killed too but reaped by the container's init.
		if left := procsWithArg("3102"); len(left) > 0 {
			t.Errorf("exec'd process still there: pids %v", left)
		}
		deadline := time.Now().Add(2 * time.Second)
		for len(procsWithArg("3101")) > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if left := procsWithArg("3101"); len(left) > 0 {
			t.Errorf("background child still there: pids %v", left)
		}
	})

	t.Run("output nobody reads", func(t *testing.T) {
		code, err := r.ExecProcess(ctx, id, ExecOptions{Process: proc(false, "sh", "-c", "while true; do echo x; done"), Stdout: failingWriter{}, PidFile: pidFile})
		if err == nil || !strings.Contains(err.Error(), "delivering") {
			t.Fatalf("= %d, %v; want a delivery error", code, err)
		}
	})

	t.Run("terminal and resize", func(t *testing.T) {
		pr, pw := io.Pipe()
		var out syncBuffer
		resize := make(chan WinSize, 1)
		resize <- WinSize{Width: 100, Height: 30}
		done := make(chan error, 1)
		var code int
		go func() {
			var err error
			code, err = r.ExecProcess(ctx, id, ExecOptions{Process: proc(true, "sh"), Stdin: pr, Stdout: &out, Resize: resize, PidFile: pidFile})
			done <- err
		}()
		waitFor(t, &out, pw, "stty size\n", "30 100")
		resize <- WinSize{Width: 120, Height: 50}
		waitFor(t, &out, pw, "stty size\n", "50 120")
		if _, err := io.WriteString(pw, "exit 3\n"); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil || code != 3 {
				t.Fatalf("= %d, %v; output %q", code, err, out.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("shell did not exit; output %q", out.String())
		}
		pw.Close()
	})
}

// waitFor types cmd into the terminal until its output shows want.
func waitFor(t *testing.T, out *syncBuffer, in io.Writer, cmd, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("terminal never showed %q; output %q", want, out.String())
		}
		if _, err := io.WriteString(in, cmd); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("client gone") }
