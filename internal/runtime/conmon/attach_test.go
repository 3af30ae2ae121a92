package conmon

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer written by Attach while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestAttachStdinOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := e.config("attachcat", "exec busybox cat")
	cfg.Stdin, cfg.StdinOnce = true, true
	if _, err := Create(ctx, cfg); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := e.rt.Start(ctx, cfg.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	var out lockedBuffer
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// stdin_once: the end of our input closes cat's stdin, cat exits, and
	// the session ends with the output.
	if err := Attach(actx, cfg.BundleDir, AttachIO{Stdin: strings.NewReader("hello\n"), Stdout: &out, StdinOnce: true}); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if out.String() != "hello\n" {
		t.Fatalf("stdout %q", out.String())
	}
	if ex := waitExit(t, cfg); ex.Code != 0 {
		t.Fatalf("exit = %+v", ex)
	}
}

func TestAttachOutputStreams(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := e.config("attachout", "while true; do echo out; echo err >&2; sleep 0.05; done")
	if _, err := Create(ctx, cfg); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := e.rt.Start(ctx, cfg.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	var stdout, stderr lockedBuffer
	actx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	err := Attach(actx, cfg.BundleDir, AttachIO{Stdout: &stdout, Stderr: &stderr})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Attach = %v, want the context's end", err)
	}
	if !strings.HasPrefix(stdout.String(), "out\n") || !strings.HasPrefix(stderr.String(), "err\n") {
		t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
	if err := Attach(ctx, t.TempDir(), AttachIO{}); err == nil {
		t.Fatal("Attach without a conmon succeeded")
	}
}

// Stdin larger than one packet arrives whole: Attach sends it in packets
// the monitor reads entirely.
func TestAttachLargeStdin(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := e.config("attachbig", "exec busybox wc -c")
	cfg.Stdin, cfg.StdinOnce = true, true
	if _, err := Create(ctx, cfg); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := e.rt.Start(ctx, cfg.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	var out lockedBuffer
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// A strings.Reader has WriteTo: without Attach's own packets it would
	// go out as one write.
	in := strings.NewReader(strings.Repeat("x", 200000))
	if err := Attach(actx, cfg.BundleDir, AttachIO{Stdin: in, Stdout: &out, StdinOnce: true}); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if strings.TrimSpace(out.String()) != "200000" {
		t.Fatalf("the container read %q bytes, want 200000", out.String())
	}
	waitExit(t, cfg)
}

// Ended attach sessions are let go even when the container prints
// nothing: the 30th session still gets through.
func TestManyAttachSessions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := e.config("attachmany", "exec busybox cat")
	cfg.Stdin = true // stdin stays open between sessions
	if _, err := Create(ctx, cfg); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := e.rt.Start(ctx, cfg.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	for range 30 {
		conn, err := connectAttach(cfg.BundleDir)
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
		time.Sleep(10 * time.Millisecond) // accepted before the next, not piled in the backlog
	}
	conn, err := connectAttach(cfg.BundleDir)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != "\x02ping\n" {
		t.Fatalf("after 30 ended sessions, an attach read %q, %v; want the echo", buf[:n], err)
	}
	if err := e.rt.Kill(ctx, cfg.ID, syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	waitExit(t, cfg)
}
