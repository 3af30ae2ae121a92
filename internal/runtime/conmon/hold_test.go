package conmon

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// holdLayout makes a bundle with a ctl fifo (held open as a monitor holds
// it) and an exec fifo elsewhere, as runc's.
func holdLayout(t *testing.T) (bundle, fifo string, ctl *os.File) {
	t.Helper()
	bundle = t.TempDir()
	fifo = filepath.Join(t.TempDir(), "exec.fifo")
	for _, p := range []string{fifo, filepath.Join(bundle, ctlFifo)} {
		if err := unix.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctl, err := os.OpenFile(filepath.Join(bundle, ctlFifo), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	return bundle, fifo, ctl
}

// A monitor that holds the exec fifo when asked: HoldExecFifo returns once
// it opened it, and a writer (runc's init) then writes without a reader
// of berthd's.
func TestHoldExecFifo(t *testing.T) {
	bundle, fifo, ctl := holdLayout(t)
	held := make(chan *os.File, 1)
	go func() {
		// As berth-monitor: one ctl line, then the open through the link.
		line, err := bufio.NewReader(ctl).ReadString('\n')
		if err != nil || line != "3 0 0\n" {
			t.Errorf("ctl message %q, %v", line, err)
			held <- nil
			return
		}
		f, err := os.OpenFile(filepath.Join(bundle, holdLink), os.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			t.Error(err)
		}
		held <- f
	}()
	if err := HoldExecFifo(context.Background(), bundle, fifo); err != nil {
		t.Fatal(err)
	}
	f := <-held
	if f == nil {
		t.FailNow()
	}
	defer f.Close()
	w, err := os.OpenFile(fifo, os.O_WRONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatalf("init's open for writing with the monitor holding the fifo: %v", err)
	}
	defer w.Close()
	if _, err := w.Write([]byte{0}); err != nil {
		t.Errorf("init's write with only the monitor reading: %v", err)
	}
}

// A monitor that does not know the message (conmon, an older
// berth-monitor) never opens: ErrNoHold, within the bound, not a hang.
func TestHoldExecFifoUnknown(t *testing.T) {
	bundle, fifo, _ := holdLayout(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := HoldExecFifo(ctx, bundle, fifo); !errors.Is(err, ErrNoHold) {
		t.Fatalf("got %v, want ErrNoHold", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

// The real monitor holds the exec fifo when asked: the container's process
// then runs without any start (berthd's or runc's), as it does when
// berthd is killed right after the hold; conmon does not know the message.
func TestHoldExecFifoMonitor(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := e.config("hold", "echo held; exit 7")
	if _, err := Create(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(e.rt.root, cfg.ID, "exec.fifo")
	err := HoldExecFifo(ctx, cfg.BundleDir, fifo)
	if filepath.Base(e.conmon) != "berth-monitor" {
		if !errors.Is(err, ErrNoHold) {
			t.Errorf("%s: got %v, want ErrNoHold", e.conmon, err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if ex := waitExit(t, cfg); ex.Code != 7 {
		t.Errorf("exit %+v, want 7: the process ran without a start", ex)
	}
}

// An exec fifo removed instead of opened (the container deleted meanwhile)
// is no hold: ErrNoHold at once, not an open taken for the monitor's.
func TestHoldExecFifoGone(t *testing.T) {
	bundle, fifo, ctl := holdLayout(t)
	go func() {
		if _, err := bufio.NewReader(ctl).ReadString('\n'); err == nil {
			os.Remove(fifo)
		}
	}()
	start := time.Now()
	if err := HoldExecFifo(context.Background(), bundle, fifo); !errors.Is(err, ErrNoHold) {
		t.Fatalf("got %v, want ErrNoHold", err)
	}
	if d := time.Since(start); d >= holdWait {
		t.Errorf("took %v: waited for the bound, not the event", d)
	}
}
