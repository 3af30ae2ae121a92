package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/monitor"
	"github.com/berth-project/berth/internal/oci"
	"github.com/berth-project/berth/internal/store"
)

func TestStoppedWithoutMonitor(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   *oci.State
		err  error
		want bool
	}{
		{"stopped", &oci.State{Status: oci.StatusStopped}, nil, true},
		{"unknown to the runtime", nil, fmt.Errorf("runc state x: container does not exist: %w", errdefs.ErrNotFound), true},
		{"running", &oci.State{Status: oci.StatusRunning}, nil, false},
		{"paused", &oci.State{Status: oci.StatusPaused}, nil, false},
		{"created", &oci.State{Status: oci.StatusCreated}, nil, false},
		{"runtime failed", nil, errors.New("runc state x: exec: signal: killed"), false},
		{"no state", nil, nil, false},
	} {
		if got := stoppedWithoutMonitor(tc.st, tc.err); got != tc.want {
			t.Errorf("%s: stoppedWithoutMonitor = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestSettleOrphaned drives settleOrphaned with a fake runtime whose
// `state` answer comes from a file: a running container whose conmon is
// gone stays running until the runtime says it stopped, and is then
// recorded as lost; a live conmon keeps it as it is.
func TestSettleOrphaned(t *testing.T) {
	dir := t.TempDir()
	statusFile := filepath.Join(dir, "status")
	rtPath := filepath.Join(dir, "fake-runtime")
	script := "#!/bin/sh\nfor a in \"$@\"; do case $a in state) echo \"{\\\"id\\\":\\\"c1\\\",\\\"status\\\":\\\"$(cat " + statusFile + ")\\\"}\"; exit 0;; list) echo null; exit 0;; esac; done\nexit 0\n"
	if err := os.WriteFile(rtPath, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "berth.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := New(context.Background(), Config{
		Store: st, Root: filepath.Join(dir, "root"), StateDir: filepath.Join(dir, "state"),
		Runtimes: map[string]*oci.Runtime{"fake": {Name: "fake", Path: rtPath}},
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
	setStatus := func(v string) {
		if err := os.WriteFile(statusFile, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()

	// A live conmon (a process naming its pid file): nothing to settle.
	pidFile := filepath.Join(s.bundleDir("c1"), "conmon.pid")
	conmon := exec.Command("sh", "-c", "sleep 30; true", "conmon", pidFile) // "; true": sh must not exec sleep and lose its argv
	if err := conmon.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { conmon.Process.Kill(); conmon.Wait() }()
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(conmon.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	setStatus("stopped")
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, alive := monitor.ConmonAlive(s.bundleDir("c1")); alive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fake conmon is not recognised as alive")
		}
	}
	if s.settleOrphaned(ctx, "c1") {
		t.Errorf("settled a container whose conmon is alive")
	}

	// conmon gone, container still running: reported running.
	conmon.Process.Kill()
	conmon.Wait()
	setStatus("running")
	if s.settleOrphaned(ctx, "c1") {
		t.Errorf("settled a container that still runs")
	}
	if c, _ := s.Get("c1"); c.State != Running {
		t.Errorf("running container without conmon: %v", c.State)
	}

	// It stops: recorded as lost, and its exit channel is closed.
	setStatus("stopped")
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
