package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe to read while the follower writes.
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

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReadTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	appendFile(t, path, logText("stdout F one", "stderr F two", "stdout P thr", "stdout F ee", "stdout F four"))
	tests := []struct {
		tail           int
		stdout, stderr string
	}{
		{tail: -1, stdout: "one\nthree\nfour\n", stderr: "two\n"},
		{tail: 0},
		{tail: 2, stdout: "three\nfour\n"},
		{tail: 3, stdout: "three\nfour\n", stderr: "two\n"},
		{tail: 100, stdout: "one\nthree\nfour\n", stderr: "two\n"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		f := &logFollower{path: path, tail: tt.tail, out: newLogWriter(&out, &errb, false), log: quietLog()}
		if err := f.run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if out.String() != tt.stdout || errb.String() != tt.stderr {
			t.Errorf("tail %d: stdout %q stderr %q, want %q %q", tt.tail, out.String(), errb.String(), tt.stdout, tt.stderr)
		}
	}
}

func TestReadMissingFile(t *testing.T) {
	var out bytes.Buffer
	f := &logFollower{path: filepath.Join(t.TempDir(), "nope.log"), tail: -1, out: newLogWriter(&out, &out, false), log: quietLog()}
	if err := f.run(context.Background()); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("err = %v, want no such file", err)
	}
}

// TestFollowRotation follows a file through kubelet-style rotation: the
// file is renamed, written once more under its old name (the writer has not
// reopened yet), then a new file appears at the path. A partial line spans
// the rotation. Following ends once "exited" and drained.
func TestFollowRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	appendFile(t, path, logText("stdout F before"))

	var out, errb syncBuffer
	var exited atomic.Bool
	f := &logFollower{
		path: path, follow: true, tail: -1, poll: 20 * time.Millisecond,
		out: newLogWriter(&out, &errb, false), log: quietLog(),
		exited: func(context.Context) (bool, error) { return exited.Load(), nil },
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.run(ctx) }()

	waitFor(t, "first line", func() bool { return out.String() == "before\n" })
	appendFile(t, path, logText("stdout F appended", "stderr F oops"))
	waitFor(t, "appended line", func() bool { return out.String() == "before\nappended\n" && errb.String() == "oops\n" })

	// Rotate: rename, a late write to the renamed file, then a new file.
	rotated := path + ".20240501-100000"
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	appendFile(t, rotated, logText("stdout F late", "stdout P split-"))
	time.Sleep(60 * time.Millisecond)
	appendFile(t, path, logText("stdout F across", "stdout F new"))
	waitFor(t, "lines after rotation", func() bool {
		return out.String() == "before\nappended\nlate\nsplit-across\nnew\n"
	})

	// A second rotation, with the new file created before we look.
	if err := os.Rename(path, path+".2"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, logText("stdout F third"))
	waitFor(t, "third file", func() bool { return strings.HasSuffix(out.String(), "new\nthird\n") })

	// The container exits right after a final write: it must still show.
	appendFile(t, path, logText("stdout F last words"))
	exited.Store(true)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follower did not stop after exit")
	}
	if want := "before\nappended\nlate\nsplit-across\nnew\nthird\nlast words\n"; out.String() != want {
		t.Errorf("stdout %q, want %q", out.String(), want)
	}
}

func TestFollowTruncateAndLateFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	var out syncBuffer
	var exited atomic.Bool
	f := &logFollower{
		path: path, follow: true, tail: 1, poll: 20 * time.Millisecond,
		out: newLogWriter(&out, io.Discard, false), log: quietLog(),
		exited: func(context.Context) (bool, error) { return exited.Load(), nil },
	}
	done := make(chan error, 1)
	go func() { done <- f.run(context.Background()) }()

	// The file appears only after the follower started.
	time.Sleep(50 * time.Millisecond)
	appendFile(t, path, logText("stdout F a"))
	waitFor(t, "first line", func() bool { return out.String() == "a\n" })
	appendFile(t, path, logText("stdout F b", "stdout F c"))
	waitFor(t, "more lines", func() bool { return out.String() == "a\nb\nc\n" })

	// Truncated in place: start again from the top.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	appendFile(t, path, logText("stdout F d"))
	waitFor(t, "line after truncation", func() bool { return out.String() == "a\nb\nc\nd\n" })
	exited.Store(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestFollowStopsOnContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	appendFile(t, path, logText("stdout F x"))
	ctx, cancel := context.WithCancel(context.Background())
	f := &logFollower{path: path, follow: true, tail: -1, poll: 20 * time.Millisecond,
		out: newLogWriter(io.Discard, io.Discard, false), log: quietLog()}
	done := make(chan error, 1)
	go func() { done <- f.run(ctx) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follower ignored cancellation")
	}
}
