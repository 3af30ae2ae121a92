package sandbox

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestKillStalePlugins: the plugins of the given pods go, those of other
// pods stay.
func TestKillStalePlugins(t *testing.T) {
	start := func(id string) *exec.Cmd {
		cmd := exec.Command("sleep", "30")
		cmd.Env = []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=" + id, "CNI_IFNAME=eth0"}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	stale := start("halfpod")
	staleDel := start("readypod")
	other := start("halfpod2")
	if n := killStalePlugins(map[string]bool{"halfpod": true, "readypod": true}); n != 2 {
		t.Errorf("killed %d plugins, want 2", n)
	}
	for _, cmd := range []*exec.Cmd{stale, staleDel} {
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("the stale plugin %d is still running", cmd.Process.Pid)
		}
	}
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the plugin of another pod was killed: %v", err)
	}
}
