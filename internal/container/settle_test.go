package container

import (
	"os/exec"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/runtime"
)

// pendingHandler reports fixed start commands.
type pendingHandler struct {
	runtime.Handler
	pids []int
}

func (h pendingHandler) PendingStarts() []int { return h.pids }

// TestWaitRuntimeCommands: the starts a crashed berthd left running are
// waited for until they end, and no longer than settleTimeout.
func TestWaitRuntimeCommands(t *testing.T) {
	start := exec.Command("sleep", "0.3")
	if err := start.Start(); err != nil {
		t.Fatal(err)
	}
	go start.Wait() // reap it, as init would reap an orphan
	began := time.Now()
	left := waitRuntimeCommands([]runtime.Handler{pendingHandler{pids: []int{start.Process.Pid}}})
	if took := time.Since(began); took < 250*time.Millisecond || took > 3*time.Second {
		t.Errorf("waited %v, want until the start finished (0.3s)", took)
	}
	if len(left) != 0 {
		t.Errorf("still running: %v", left)
	}
}
