package container

import (
	"time"

	"github.com/berth-project/berth/internal/host"
	"github.com/berth-project/berth/internal/oci"
)

// settleTimeout bounds the wait for a crashed berthd's runtime commands.
const settleTimeout = 5 * time.Second

// waitRuntimeCommands waits, at start, until the `runc start` commands a
// crashed berthd left running (its children, which its death does not stop)
// have finished, so that reconcile reads settled state. One that finished
// after reconcile read "created" would leave the record CREATED while the
// container runs, and the retried start would then block for ever on the
// exec fifo the first one already consumed. They are the processes running
// a runtime binary on one of this berthd's runtime roots with "start <id>"
// as their last arguments (conmon names the root too, but is not the
// runtime binary; runtime execs, which may last, are not waited for). It
// returns those still running after settleTimeout.
func waitRuntimeCommands(runtimes map[string]*oci.Runtime) []int {
	pids := host.Find(func(p host.Proc) bool {
		args, _ := p.Cmdline()
		for _, rt := range runtimes {
			if rt.Root != "" && len(args) > 2 && args[0] == rt.Path && hasArgPair(args, "--root", rt.Root) && args[len(args)-2] == "start" {
				return true
			}
		}
		return false
	})
	deadline := time.Now().Add(settleTimeout)
	var left []int
	for _, pid := range pids {
		if !host.WaitGone(pid, time.Until(deadline)) {
			left = append(left, pid)
		}
	}
	return left
}

func hasArgPair(args []string, flag, value string) bool {
	for i, a := range args {
		if a == flag+"="+value || (a == flag && i+1 < len(args) && args[i+1] == value) {
			return true
		}
	}
	return false
}
