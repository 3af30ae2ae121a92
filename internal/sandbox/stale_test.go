package sandbox

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestKillStalePlugins: the plugins of a half-created pod go, those of
// other pods stay.
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
	other := start("halfpod2")
	killStalePlugins("halfpod")
	done := make(chan error, 1)
	go func() { done <- stale.Wait() }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("the stale plugin of the half-created pod is still running")
	}
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the plugin of another pod was killed: %v", err)
	}
}
