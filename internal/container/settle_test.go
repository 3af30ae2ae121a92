package container

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/oci"
)

// TestWaitRuntimeCommands: a crashed berthd's `runc start` still running at
// the next start is waited for; a runtime exec, which may last, is not.
func TestWaitRuntimeCommands(t *testing.T) {
	dir := t.TempDir()
	rt := &oci.Runtime{Name: "runc", Path: filepath.Join(dir, "runc"), Root: filepath.Join(dir, "root")}
	// A process whose command line is the runtime's: /bin/sh with argv[0]
	// set to the runtime's path ("; true" keeps sh from exec'ing sleep).
	run := func(script string, tail ...string) *exec.Cmd {
		cmd := &exec.Cmd{Path: "/bin/sh", Args: append([]string{rt.Path, "-c", script + "; true", "--root", rt.Root, "--log-format", "json"}, tail...)}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	start := run("sleep 0.3", "start", "abc")
	t.Cleanup(func() { start.Process.Kill() })
	go start.Wait() // reap it, as init would reap an orphan
	exe := run("sleep 30", "exec", "abc", "sh")
	t.Cleanup(func() { exe.Process.Kill(); exe.Wait() })

	began := time.Now()
	left := waitRuntimeCommands(map[string]*oci.Runtime{"runc": rt})
	if took := time.Since(began); took < 250*time.Millisecond || took > 3*time.Second {
		t.Errorf("waited %v, want until the start finished (0.3s) and not for the exec", took)
	}
	if len(left) != 0 {
		t.Errorf("still running: %v", left)
	}
}
