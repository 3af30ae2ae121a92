package container

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"time"

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
	var pids []int
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
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
		for _, rt := range runtimes {
			if rt.Root != "" && len(args) > 2 && string(args[0]) == rt.Path && hasArgPair(args, "--root", rt.Root) && string(args[len(args)-2]) == "start" {
				pids = append(pids, pid)
				break
			}
		}
	}
	deadline := time.Now().Add(settleTimeout)
	var left []int
	for _, pid := range pids {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if alive(pid) {
			left = append(left, pid)
		}
	}
	return left
}

func hasArgPair(args [][]byte, flag, value string) bool {
	for i, a := range args {
		if string(a) == flag+"="+value || (string(a) == flag && i+1 < len(args) && string(args[i+1]) == value) {
			return true
		}
	}
	return false
}

// alive says pid exists and is not a zombie.
func alive(pid int) bool {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(st, ')')
	return i > 0 && i+2 < len(st) && st[i+2] != 'Z'
}
