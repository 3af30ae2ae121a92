package runtime

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fifoLayout makes runc's state layout for container "c" under a temp
// root: exec.fifo, state.json naming pid, and a bundle with config.json.
func fifoLayout(t *testing.T, pid int, config string) (root, bundle, fifo string) {
	t.Helper()
	root, bundle = t.TempDir(), t.TempDir()
	dir := filepath.Join(root, "c")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	fifo = filepath.Join(dir, "exec.fifo")
	if err := unix.Mkfifo(fifo, 0o622); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(`{"id":"c","init_process_pid":`+strconv.Itoa(pid)+`}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return root, bundle, fifo
}

// deadPid is the pid of a process that has exited and been reaped.
func deadPid(t *testing.T) int {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestFifoStart(t *testing.T) {
	ctx := context.Background()
	t.Run("init writes its byte", func(t *testing.T) {
		root, bundle, fifo := fifoLayout(t, os.Getpid(), `{"ociVersion":"1.2.0"}`)
		done := make(chan error, 1)
		go func() {
			// As runc init: a blocking open for writing, then one byte.
			f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
			if err != nil {
				done <- err
				return
			}
			_, err = f.Write([]byte{0})
			f.Close()
			done <- err
		}()
		if err := fifoStart(ctx, root, "c", bundle); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(fifo); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("exec fifo left behind: %v", err)
		}
	})
	t.Run("poststart hooks are left to runc", func(t *testing.T) {
		root, bundle, fifo := fifoLayout(t, os.Getpid(), `{"hooks":{"poststart":[{"path":"/bin/true"}]}}`)
		if err := fifoStart(ctx, root, "c", bundle); !errors.Is(err, errNoFifoStart) {
			t.Fatalf("got %v, want errNoFifoStart", err)
		}
		if _, err := os.Lstat(fifo); err != nil {
			t.Errorf("fifo touched: %v", err)
		}
	})
	t.Run("no fifo: not runc's layout or already started", func(t *testing.T) {
		root, bundle, fifo := fifoLayout(t, os.Getpid(), `{}`)
		os.Remove(fifo)
		if err := fifoStart(ctx, root, "c", bundle); !errors.Is(err, errNoFifoStart) {
			t.Fatalf("got %v, want errNoFifoStart", err)
		}
	})
	t.Run("no state", func(t *testing.T) {
		root, bundle, _ := fifoLayout(t, os.Getpid(), `{}`)
		os.Remove(filepath.Join(root, "c", "state.json"))
		if err := fifoStart(ctx, root, "c", bundle); !errors.Is(err, errNoFifoStart) {
			t.Fatalf("got %v, want errNoFifoStart", err)
		}
	})
	t.Run("init died before writing", func(t *testing.T) {
		root, bundle, _ := fifoLayout(t, deadPid(t), `{}`)
		err := fifoStart(ctx, root, "c", bundle)
		if err == nil || !strings.Contains(err.Error(), "exited before it could start") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		root, bundle, _ := fifoLayout(t, os.Getpid(), `{}`)
		ctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
		defer cancel()
		if err := fifoStart(ctx, root, "c", bundle); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want the deadline", err)
		}
	})
}
