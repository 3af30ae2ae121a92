package conmon

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/cgroups"
	"github.com/berth-project/berth/internal/errdefs"
)

// TestReapOrphanDuringCreate is a daemon killed while conmon runs the
// runtime's create: the next daemon reaps the orphan while that create is
// still going. Nothing may be left once the create would have finished:
// no conmon or runtime process, no runtime state, no cgroup, no exit file.
func TestReapOrphanDuringCreate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := e.config("orphan", "sleep 100")
	// A createRuntime hook holds the create for a second, after the
	// runtime made the cgroup and before it wrote its state.
	holdCreate(t, cfg.BundleDir, "1")
	for _, d := range []string{cfg.Dir, cfg.ExitDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// conmon as Create starts it, with nobody reading its sync pipe: the
	// daemon that started it is gone.
	cmd := exec.Command(cfg.ConmonPath, cfg.args()...)
	cmd.Dir = cfg.Dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("conmon: %v: %s", err, out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !cgroupExists(cfg.ID) {
		if time.Now().After(deadline) {
			t.Fatal("the runtime made no cgroup within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}

	ReapOrphan(ctx, cfg.ID, cfg.Dir, cfg.BundleDir, []Runtime{e.rt})
	time.Sleep(1500 * time.Millisecond) // past the hook: a surviving create would be done

	if pids := append(conmonProcs(cfg.Dir), conmonProcs(cfg.BundleDir)...); len(pids) != 0 {
		t.Errorf("processes left: %v", pids)
	}
	if _, err := e.rt.State(ctx, cfg.ID); !errdefs.IsNotFound(err) {
		t.Errorf("runtime state left: %v", err)
	}
	if cgroupExists(cfg.ID) {
		t.Error("cgroup left")
	}
	if _, err := os.Stat(filepath.Join(cfg.ExitDir, cfg.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("exit file left: %v", err)
	}
}

func cgroupExists(id string) bool {
	for _, dir := range cgroups.Dirs(testCgroupParent + "/" + id) {
		if _, err := os.Stat(dir); err == nil {
			return true
		}
	}
	return false
}

// holdCreate adds a createRuntime hook that sleeps secs to the bundle's
// config: the runtime's create is held after it made the cgroup and
// before it wrote its state.
func holdCreate(t *testing.T, bundleDir, secs string) {
	t.Helper()
	p := filepath.Join(bundleDir, "config.json")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	spec.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sleep", Args: []string{"sleep", secs}}}}
	if data, err = json.Marshal(&spec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
