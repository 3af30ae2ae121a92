package conmon

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/host"
)

// spareProcs lists the waiting spares of monitor path.
func spareProcs(path string) []int {
	return host.Find(func(p host.Proc) bool {
		args, _ := p.Cmdline()
		return len(args) == 3 && args[0] == path && args[1] == "--spare"
	})
}

func waitSpare(t *testing.T, s *Spares) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		ready := len(s.ready) == spareCount
		s.mu.Unlock()
		if ready {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no spare monitor after 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A create through a spare behaves as one through an exec'd monitor: the
// monitor is found by its pid file and command line, logs, records the
// exit; the next spare starts; Close ends the waiting one.
func TestCreateWithSpare(t *testing.T) {
	if filepath.Base(testMonitor) != "berth-monitor" {
		t.Skip("only berth-monitor has spares")
	}
	e := newEnv(t)
	ctx := context.Background()
	s := NewSpares(testMonitor, slog.Default())
	defer s.Close()
	waitSpare(t, s)
	spares := spareProcs(testMonitor)
	if len(spares) != spareCount {
		t.Fatalf("%d spare processes, want %d", len(spares), spareCount)
	}
	cfg := e.config("spare", "echo from-spare; exit 5")
	cfg.Spares = s
	p, err := Create(ctx, cfg)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if !slices.Contains(spares, p.ConmonPid) {
		t.Fatalf("the container's monitor is %d, not a spare %v", p.ConmonPid, spares)
	}
	if pid, alive := ConmonAlive(cfg.Dir); !alive || pid != p.ConmonPid {
		t.Fatalf("ConmonAlive = %d, %v; want %d, true", pid, alive, p.ConmonPid)
	}
	cwd, _ := os.Readlink("/proc/" + strconv.Itoa(p.ConmonPid) + "/cwd")
	if cwd != cfg.Dir {
		t.Errorf("the monitor's cwd is %q, want %q", cwd, cfg.Dir)
	}
	_, _, sid := procStat(t, p.ConmonPid)
	if sid != p.ConmonPid {
		t.Errorf("the monitor is not a session leader (sid %d)", sid)
	}
	if err := e.rt.Start(ctx, cfg.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if ex := waitExit(t, cfg); ex.Code != 5 {
		t.Fatalf("exit = %+v, want 5", ex)
	}
	var got []string
	for _, l := range readLog(t, cfg.LogPath) {
		got = append(got, l.content)
	}
	if strings.Join(got, "|") != "from-spare" {
		t.Errorf("log = %q", got)
	}
	s.Refill()      // as after the pod start
	waitSpare(t, s) // the next one
	s.Close()
	deadline := time.Now().Add(5 * time.Second)
	for len(spareProcs(testMonitor)) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("a spare monitor still runs after Close")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A failed create through a spare leaves nothing behind either: a runtime
// that fails, and one that outlives the create's deadline.
func TestSpareCreateFailure(t *testing.T) {
	if filepath.Base(testMonitor) != "berth-monitor" {
		t.Skip("only berth-monitor has spares")
	}
	e := newEnv(t)
	s := NewSpares(testMonitor, slog.Default())
	defer s.Close()
	for _, tc := range []struct {
		name    string
		prepare func(cfg Config)
		timeout time.Duration
	}{
		{"sparefail", func(cfg Config) {
			if err := os.Remove(filepath.Join(cfg.BundleDir, "config.json")); err != nil {
				t.Fatal(err)
			}
		}, time.Minute},
		{"sparehang", func(cfg Config) {
			holdCreate(t, cfg.BundleDir, "2")
		}, 300 * time.Millisecond},
	} {
		waitSpare(t, s)
		spares := spareProcs(testMonitor)
		cfg := e.config(tc.name, "true")
		cfg.Spares = s
		tc.prepare(cfg)
		ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
		_, err := Create(ctx, cfg)
		cancel()
		if err == nil {
			t.Fatalf("%s: Create succeeded", tc.name)
		}
		t.Logf("%s: %v", tc.name, err)
		// A spare took the job (and went with it): it is not waiting.
		// (Spares started since are new pids.)
		waiting := spareProcs(testMonitor)
		used := false
		for _, pid := range spares {
			used = used || !slices.Contains(waiting, pid)
		}
		if !used {
			t.Fatalf("%s: none of the spares %v was used", tc.name, spares)
		}
		if pids := conmonProcs(cfg.Dir); len(pids) != 0 {
			t.Fatalf("%s: processes left: %v", tc.name, pids)
		}
		if _, err := e.rt.State(context.Background(), cfg.ID); !errdefs.IsNotFound(err) {
			t.Fatalf("%s: runtime state left: %v", tc.name, err)
		}
		for _, f := range []string{ctlFifo, attachSocket} {
			if _, err := os.Stat(filepath.Join(cfg.BundleDir, f)); err == nil {
				t.Errorf("%s: %s left after a failed create", tc.name, f)
			}
		}
	}
}

// A spare whose job is abandoned before it wrote its pid file is ended by
// the pid its first process reported.
func TestSpareKill(t *testing.T) {
	if filepath.Base(testMonitor) != "berth-monitor" {
		t.Skip("only berth-monitor has spares")
	}
	s := &Spares{path: testMonitor, log: slog.Default()}
	sp, err := s.start()
	if err != nil {
		t.Fatal(err)
	}
	defer sp.syncR.Close()
	if got := spareProcs(testMonitor); len(got) != 1 || got[0] != sp.pid {
		t.Fatalf("spares %v, want the reported pid %d", got, sp.pid)
	}
	// A job whose runtime never returns: the monitor is still at it when
	// it is killed.
	dir := t.TempDir()
	hang := filepath.Join(dir, "hang")
	if err := os.WriteFile(hang, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"-c", "x", "-r", hang, "-b", dir, "-p", dir + "/pid", "-P", dir + "/conmon.pid",
		"-l", "none:", "--exit-dir", dir, "--persist-dir", dir}
	if err := sp.give(args); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	// Alive and not a zombie (init reaps it in its own time).
	alive := func() bool {
		st, err := os.ReadFile("/proc/" + strconv.Itoa(sp.pid) + "/stat")
		i := bytes.LastIndexByte(st, ')')
		return err == nil && i > 0 && i+2 < len(st) && st[i+2] != 'Z'
	}
	if !alive() {
		t.Fatalf("the spare %d is not at its job", sp.pid)
	}
	sp.kill()
	if alive() {
		t.Fatalf("the spare %d runs after kill", sp.pid)
	}
	// Its runtime died with it (PDEATHSIG).
	if pids := conmonProcs(dir); len(pids) != 0 {
		t.Fatalf("processes left: %v", pids)
	}
}

func TestSpareFits(t *testing.T) {
	s := &Spares{path: "/usr/bin/berth-monitor"}
	if !s.fits([]string{"-c", "abc", "-b", "/run/berth/containers/" + strings.Repeat("a", 64)}) {
		t.Error("a usual command line does not fit")
	}
	if s.fits([]string{strings.Repeat("a", len(sparePad)+100)}) {
		t.Error("a command line longer than the pad fits")
	}
	var none *Spares
	if none.take([]string{"-c", "x"}) != nil {
		t.Error("nil Spares gave a spare")
	}
	if NewSpares("/usr/bin/conmon", slog.Default()) != nil {
		t.Error("conmon got spares")
	}
}
