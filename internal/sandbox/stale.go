package sandbox

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
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
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err == nil && ids[cniContainerID(env)] {
			pids = append(pids, pid)
		}
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(2 * time.Second)
	for _, pid := range pids {
		// Gone, or a zombie its dead parent's reaper (init) collects.
		for time.Now().Before(deadline) {
			st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			if err != nil || bytes.Contains(st, []byte(") Z ")) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return len(pids)
}

// cniContainerID returns the value of CNI_CONTAINERID in a NUL-separated
// environment (/proc/<pid>/environ), or "" when it has none.
func cniContainerID(environ []byte) string {
	const key = "CNI_CONTAINERID="
	for _, kv := range bytes.Split(environ, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte(key)); ok {
			return string(v)
		}
	}
	return ""
}
