package runtime

import (
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// TestPendingStarts: a `runc start` on the handler's root is found; a
// runtime exec, which may last, and a start on another root are not.
func TestPendingStarts(t *testing.T) {
	dir := t.TempDir()
	r := &cli{name: "runc", path: filepath.Join(dir, "runc"), root: filepath.Join(dir, "root")}
	// A process whose command line is the runtime's: /bin/sh with argv[0]
	// set to the runtime's path ("; true" keeps sh from exec'ing sleep).
	run := func(root string, tail ...string) *exec.Cmd {
		cmd := &exec.Cmd{Path: "/bin/sh", Args: append([]string{r.path, "-c", "sleep 30; true", "--root", root, "--log-format", "json"}, tail...)}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	start := run(r.root, "start", "abc")
	run(r.root, "exec", "abc", "sh")
	run(filepath.Join(dir, "other"), "start", "abc")
	got := r.pendingStarts()
	if !slices.Equal(got, []int{start.Process.Pid}) {
		t.Errorf("pendingStarts = %v, want [%d]", got, start.Process.Pid)
	}
}
