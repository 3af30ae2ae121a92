package runtime

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
)

// pendingStarts returns the processes running this runtime's start on its
// root: the binary as argv[0], --root naming the root, "start <id>" last.
// conmon names the root too, but is not the runtime binary; runtime execs,
// which may last, do not end in start.
func (r *cli) pendingStarts() []int {
	if r.root == "" {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
		if len(args) > 2 && string(args[0]) == r.path && hasArgPair(args, "--root", r.root) && string(args[len(args)-2]) == "start" {
			pids = append(pids, pid)
		}
	}
	return pids
}

func hasArgPair(args [][]byte, flag, value string) bool {
	for i, a := range args {
		if string(a) == flag+"="+value || (string(a) == flag && i+1 < len(args) && string(args[i+1]) == value) {
			return true
		}
	}
	return false
}
