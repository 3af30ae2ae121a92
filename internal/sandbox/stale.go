package sandbox

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// killStalePlugins ends the CNI plugins a crashed berthd left working on pod
// id. Plugins are berthd's children, and nothing stops them when berthd is
// killed: an ADD still running when the restarted berthd tears the
// half-created pod down would finish after that DEL and keep its lease and
// veth for ever. They are found by the CNI_CONTAINERID in their environment
// (IPAM plugins run by the main plugin inherit it), which is the pod's
// random id and so never another daemon's.
func killStalePlugins(id string) {
	want := []byte("CNI_CONTAINERID=" + id + "\x00")
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err == nil && bytes.Contains(append([]byte{0}, env...), append([]byte{0}, want...)) {
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
}
