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

	"github.com/berth-project/berth/internal/runtime/conmon"
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

// fakeInit starts a process that looks like runc's init waiting to start
// (its command name is runc's init's: sleep exec'd through a link of that
// name) and returns its pid.
func fakeInit(t *testing.T) int {
	t.Helper()
	link := filepath.Join(t.TempDir(), initComm)
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(sleep, link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(link, "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
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
		root, bundle, fifo := fifoLayout(t, fakeInit(t), `{"ociVersion":"1.2.0"}`)
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
		if err := fifoStart(ctx, root, "c", bundle, nil); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(fifo); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("exec fifo left behind: %v", err)
		}
	})
	t.Run("the monitor's hold comes before berthd's open", func(t *testing.T) {
		root, bundle, fifo := fifoLayout(t, fakeInit(t), `{}`)
		var held *os.File
		hold := func(f string) error {
			// No reader yet: berthd has not opened the fifo before the hold.
			if w, err := os.OpenFile(f, os.O_WRONLY|unix.O_NONBLOCK, 0); !errors.Is(err, unix.ENXIO) {
				if w != nil {
					w.Close()
				}
				t.Errorf("a reader before the hold: open for writing = %v, want ENXIO", err)
			}
			var err error
			held, err = os.OpenFile(f, os.O_RDONLY|unix.O_NONBLOCK, 0)
			return err
		}
		go func() {
			if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
				f.Write([]byte{0})
				f.Close()
			}
		}()
		if err := fifoStart(ctx, root, "c", bundle, hold); err != nil {
			t.Fatal(err)
		}
		if held == nil {
			t.Error("hold not asked")
		} else {
			held.Close()
		}
	})
	t.Run("a monitor that does not hold: the start goes on", func(t *testing.T) {
		root, bundle, fifo := fifoLayout(t, fakeInit(t), `{}`)
		go func() {
			if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
				f.Write([]byte{0})
				f.Close()
			}
		}()
		if err := fifoStart(ctx, root, "c", bundle, func(string) error { return conmon.ErrNoHold }); err != nil {
			t.Fatal(err)
		}
		root, bundle, _ = fifoLayout(t, fakeInit(t), `{}`)
		if err := fifoStart(ctx, root, "c", bundle, func(string) error { return errors.New("boom") }); err == nil {
			t.Error("a failed hold's error was dropped")
		}
	})
	t.Run("poststart hooks are left to runc", func(t *testing.T) {
		root, bundle, fifo := fifoLayout(t, os.Getpid(), `{"hooks":{"poststart":[{"path":"/bin/true"}]}}`)
		if err := fifoStart(ctx, root, "c", bundle, nil); !errors.Is(err, errNoFifoStart) {
			t.Fatalf("got %v, want errNoFifoStart", err)
		}
		if _, err := os.Lstat(fifo); err != nil {
			t.Errorf("fifo touched: %v", err)
		}
	})
	t.Run("no fifo: not runc's layout or already started", func(t *testing.T) {
		root, bundle, fifo := fifoLayout(t, os.Getpid(), `{}`)
		os.Remove(fifo)
		if err := fifoStart(ctx, root, "c", bundle, nil); !errors.Is(err, errNoFifoStart) {
			t.Fatalf("got %v, want errNoFifoStart", err)
		}
	})
	t.Run("no state", func(t *testing.T) {
		root, bundle, _ := fifoLayout(t, os.Getpid(), `{}`)
		os.Remove(filepath.Join(root, "c", "state.json"))
		if err := fifoStart(ctx, root, "c", bundle, nil); !errors.Is(err, errNoFifoStart) {
			t.Fatalf("got %v, want errNoFifoStart", err)
		}
	})
	t.Run("init died before writing", func(t *testing.T) {
		root, bundle, _ := fifoLayout(t, deadPid(t), `{}`)
		err := fifoStart(ctx, root, "c", bundle, nil)
		if err == nil || !strings.Contains(err.Error(), "exited before it could start") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("init exec'd the container's process already", func(t *testing.T) {
		// An earlier start read the byte and was cut short (berthd
		// killed) before it removed the fifo: runc still says created,
		// and no one will write to the fifo again.
		sleep := exec.Command("sleep", "60")
		if err := sleep.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { sleep.Process.Kill(); sleep.Wait() }()
		root, bundle, fifo := fifoLayout(t, sleep.Process.Pid, `{}`)
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := fifoStart(ctx, root, "c", bundle, nil); err != nil {
			t.Fatalf("got %v, want the start taken as done", err)
		}
		if _, err := os.Lstat(fifo); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("exec fifo left behind: %v", err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		root, bundle, _ := fifoLayout(t, fakeInit(t), `{}`)
		ctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
		defer cancel()
		if err := fifoStart(ctx, root, "c", bundle, nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want the deadline", err)
		}
	})
}

// A start cut short after init exec'd (berthd killed before it removed the
// exec fifo) is finished at start-up: the fifo goes, so runc says running;
// a container whose init still waits, or that has no fifo, is left alone.
func TestFinishCutStart(t *testing.T) {
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleep.Process.Kill(); sleep.Wait() }()
	root, _, fifo := fifoLayout(t, sleep.Process.Pid, `{}`)
	if done, err := finishCutStart(root, "c"); !done || err != nil {
		t.Errorf("exec'd init: finishCutStart = %v, %v, want done", done, err)
	}
	if _, err := os.Lstat(fifo); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("exec fifo left: %v", err)
	}
	if done, err := finishCutStart(root, "c"); done || err != nil {
		t.Errorf("no fifo: finishCutStart = %v, %v, want nothing done", done, err)
	}
	root, _, fifo = fifoLayout(t, fakeInit(t), `{}`)
	if done, err := finishCutStart(root, "c"); done || err != nil {
		t.Errorf("init still waiting: finishCutStart = %v, %v, want nothing done", done, err)
	}
	if _, err := os.Lstat(fifo); err != nil {
		t.Errorf("exec fifo of a waiting init touched: %v", err)
	}
}
