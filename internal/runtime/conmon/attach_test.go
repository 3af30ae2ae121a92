package conmon

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
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
