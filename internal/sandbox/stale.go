package sandbox

import (
	"syscall"
	"time"

	"github.com/berth-project/berth/internal/host"
)

// killStalePlugins ends the CNI plugins a crashed berthd left working on the
// pods ids (every pod of this berthd, recorded or half-created) and returns
// how many it killed. Plugins are berthd's children, and nothing stops them
// when berthd is killed: an ADD still running when the restarted berthd
// tears a half-created pod down would finish after that DEL and keep its
// lease and veth for ever, and a DEL that hangs would run for ever beside
// the retried one. At start no plugin of the new berthd runs yet, so every
// plugin working on one of its pods is stale. They are found by the
// CNI_CONTAINERID in their environment (IPAM plugins run by the main plugin
// inherit it), which is the pod's random id and so never another daemon's.
func killStalePlugins(ids map[string]bool) int {
	if len(ids) == 0 {
		return 0
	}
	pids := host.Find(func(p host.Proc) bool {
		id, _, err := p.Getenv("CNI_CONTAINERID")
		return err == nil && ids[id]
	})
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	// Gone, or a zombie its dead parent's reaper (init) collects; one
	// deadline for all.
	deadline := time.Now().Add(2 * time.Second)
	for _, pid := range pids {
		host.WaitGone(pid, time.Until(deadline))
	}
	return len(pids)
}
