package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/runtime"
	"github.com/berth-project/berth/internal/store"
)

func TestStoppedWithoutMonitor(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   *runtime.State
		err  error
		want bool
	}{
		{"stopped", &runtime.State{Status: runtime.StatusStopped}, nil, true},
		{"unknown to the runtime", nil, fmt.Errorf("runc state x: container does not exist: %w", errdefs.ErrNotFound), true},
		{"running", &runtime.State{Status: runtime.StatusRunning}, nil, false},
		{"paused", &runtime.State{Status: runtime.StatusPaused}, nil, false},
		{"created", &runtime.State{Status: runtime.StatusCreated}, nil, false},
		{"runtime failed", nil, errors.New("runc state x: exec: signal: killed"), false},
		{"no state", nil, nil, false},
	} {
		if got := stoppedWithoutMonitor(tc.st, tc.err); got != tc.want {
			t.Errorf("%s: stoppedWithoutMonitor = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestSettleOrphaned: a running container whose conmon is gone stays
// running until the runtime says it stopped, and is then recorded as lost;
// a live conmon keeps it as it is.
func TestSettleOrphaned(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "berth.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := newFakeHandler()
	s, err := New(context.Background(), Config{
		Store: st, Root: filepath.Join(dir, "root"), StateDir: filepath.Join(dir, "state"),
		Runtimes: fakeRuntimes{h},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(s.bundleDir("c1"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.publishNew(&Container{ID: "c1", State: Running, Runtime: "fake", StartedAt: 1, Config: &runtimeapi.ContainerConfig{}}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// A live conmon: nothing to settle.
	h.set("c1", "stopped", true)
	if s.settleOrphaned(ctx, "c1") {
		t.Errorf("settled a container whose conmon is alive")
	}

	// conmon gone, container still running: reported running.
	h.set("c1", "running", false)
	if s.settleOrphaned(ctx, "c1") {
		t.Errorf("settled a container that still runs")
	}
	if c, _ := s.Get("c1"); c.State != Running {
		t.Errorf("running container without conmon: %v", c.State)
	}

	// It stops: recorded as lost, and its exit channel is closed.
	h.set("c1", "stopped", false)
	if !s.settleOrphaned(ctx, "c1") {
		t.Fatalf("did not settle a stopped container without conmon")
	}
	c, _ := s.Get("c1")
	if c.State != Exited || c.ExitCode != 255 || c.Reason != "Unknown" || c.Message != lostMonitorMessage {
		t.Errorf("stopped container without conmon: %+v", c)
	}
	select {
	case <-s.exitChan("c1"):
	default:
		t.Errorf("exit channel not closed")
	}
	rows, err := s.records.Load(nil)
	if err != nil || len(rows) != 1 || rows[0].Status.State != Exited {
		t.Errorf("stored records: %v %+v", err, rows)
	}
}

// TestMonitorWatch: a live monitor is found once through its files and
// then watched through a pidfd; its exit shows at the next check; a pid
// the files no longer name after the open is not kept.
func TestMonitorWatch(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	pid := cmd.Process.Pid
	w := monitorWatch{}
	defer w.closeAll()
	finds := 0
	find := func() (int, bool) { finds++; return pid, true }
	if !w.alive("c1", find) || !w.alive("c1", find) {
		t.Fatal("a live monitor reads as gone")
	}
	if finds != 2 || len(w) != 1 {
		t.Fatalf("files read %d times, %d fds kept; want 2 reads (find, then check after the open) and 1 fd", finds, len(w))
	}
	cmd.Process.Kill()
	cmd.Wait()
	if w.alive("c1", find) {
		t.Error("an exited monitor reads as alive")
	}
	if len(w) != 0 {
		t.Errorf("%d fds kept after the exit", len(w))
	}

	// The files name another pid on the second read: not kept.
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { other.Process.Kill(); other.Wait() }()
	n := 0
	moving := func() (int, bool) {
		n++
		if n == 1 {
			return other.Process.Pid, true
		}
		return other.Process.Pid + 1, true
	}
	if w.alive("c2", moving) || len(w) != 0 {
		t.Errorf("a pid the files stopped naming was kept (%d fds)", len(w))
	}
	if w.alive("c3", func() (int, bool) { return 0, false }) {
		t.Error("no monitor reads as alive")
	}
	if !w.alive("c4", func() (int, bool) { return 0, true }) || len(w) != 0 {
		t.Error("a container without a monitor pid (handler gone) must read as monitored, unwatched")
	}
	if !w.alive("c5", func() (int, bool) { return other.Process.Pid, true }) || len(w) != 1 {
		t.Fatal("live monitor not watched")
	}
	w.forget(map[string]bool{})
	if len(w) != 0 {
		t.Errorf("forget kept %d fds", len(w))
	}
}
