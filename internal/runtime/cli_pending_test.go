package runtime

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPendingStarts: a `runc start` on the handler's root is found; a
// runtime exec, which may last, and a start on another root are not.
func TestPendingStarts(t *testing.T) {
	dir := t.TempDir()
	r := &cli{name: "runc", path: filepath.Join(dir, "runc"), root: filepath.Join(dir, "root")}
	// A process whose command line is the runtime's: /bin/sh with argv[0]
	// set to the runtime's path, blocked in its builtin read on a pipe that
	// stays open (no child: a forked child would carry the same command
	// line until it execs).
	run := func(root string, tail ...string) *exec.Cmd {
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd := &exec.Cmd{Path: "/bin/sh", Args: append([]string{r.path, "-c", "read x", "--root", root, "--log-format", "json"}, tail...), Stdin: pr}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pr.Close()
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); pw.Close() })
		// Until the child has exec'd, its command line is the test
		// binary's: wait for it (a loaded machine can take a while).
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid))
			if strings.HasPrefix(string(b), r.path+"\x00") {
				break
			}
		}
		return cmd
	}
	start := run(r.root, "start", "abc")
	run(r.root, "exec", "abc", "sh")
	run(filepath.Join(dir, "other"), "start", "abc")
	got := r.pendingStarts()
	if !slices.Equal(got, []int{start.Process.Pid}) {
		t.Errorf("pendingStarts = %v, want [%d]", got, start.Process.Pid)
	}
}
