package conmon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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
		ready := s.next != nil
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
	if n := len(spareProcs(testMonitor)); n != 1 {
		t.Fatalf("%d spare processes, want 1", n)
	}
	cfg := e.config("spare", "echo from-spare; exit 5")
	cfg.Spares = s
	p, err := Create(ctx, cfg)
	if err != nil {
		t.Fatalf("Create: %v", err)
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

// A failed create through a spare leaves nothing behind either.
func TestSpareCreateFailure(t *testing.T) {
	if filepath.Base(testMonitor) != "berth-monitor" {
		t.Skip("only berth-monitor has spares")
	}
	e := newEnv(t)
	s := NewSpares(testMonitor, slog.Default())
	defer s.Close()
	waitSpare(t, s)
	cfg := e.config("sparefail", "true")
	cfg.Spares = s
	if err := os.Remove(filepath.Join(cfg.BundleDir, "config.json")); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(context.Background(), cfg); err == nil {
		t.Fatal("Create without config.json succeeded")
	}
	if _, alive := ConmonAlive(cfg.Dir); alive {
		t.Error("the monitor of a failed create still runs")
	}
	for _, f := range []string{ctlFifo, attachSocket} {
		if _, err := os.Stat(filepath.Join(cfg.BundleDir, f)); err == nil {
			t.Errorf("%s left after a failed create", f)
		}
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
