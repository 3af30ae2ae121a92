package container

import (
	"time"

	"github.com/berth-project/berth/internal/host"
	"github.com/berth-project/berth/internal/runtime"
)

// settleTimeout bounds the wait for a crashed berthd's runtime commands.
const settleTimeout = 5 * time.Second

// waitRuntimeCommands waits, at start, until the runtime starts a crashed
// berthd left running (its children, which its death does not stop) have
// finished, so that reconcile reads settled state. One that finished after
// reconcile read "created" would leave the record CREATED while the
// container runs, and the retried start would then block for ever on the
// exec fifo the first one already consumed. It returns those still running
// after settleTimeout.
func waitRuntimeCommands(handlers []runtime.Handler) []int {
	var pids []int
	for _, h := range handlers {
		pids = append(pids, h.PendingStarts()...)
	}
	deadline := time.Now().Add(settleTimeout)
	var left []int
	for _, pid := range pids {
		for host.Alive(pid) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if host.Alive(pid) {
			left = append(left, pid)
		}
	}
	return left
}
