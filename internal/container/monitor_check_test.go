package container

import (
	"context"
	"errors"
	"fmt"
	"os"
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
