package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// TestMemoryTrimAfterBurst: once state-changing calls have been quiet for
// memory_trim_after, berthd gives back the heap's free memory and unmaps the
// pages of its binary the burst faulted in; the next pod start and exec
// work as before (their code faults back in), and their burst is trimmed
// in turn.
func TestMemoryTrimAfterBurst(t *testing.T) {
	d := framework.StartDaemon(t, framework.Options{Config: "memory_trim_after = \"300ms\"\n"})
	const trimmed = "gave back memory after a burst of calls"
	for i := range 3 {
		pod := d.PodConfig(t, fmt.Sprintf("trim%d", i))
		podID := d.RunPod(t, pod)
		d.RunContainer(t, podID, pod, framework.Sh("sleeper", "exec sleep 4242"))
	}
	n := waitLogCount(t, d, trimmed, 1)
	t.Logf("berthd after the first trim: %s", rssLine(t, d.PID()))

	pod := d.PodConfig(t, "trim-after")
	podID := d.RunPod(t, pod)
	id := d.RunContainer(t, podID, pod, framework.Sh("sleeper", "exec sleep 4242"))
	resp, err := d.Runtime.ExecSync(framework.Ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"echo", "ok"}, Timeout: 10})
	if err != nil || resp.ExitCode != 0 || string(resp.Stdout) != "ok\n" {
		t.Fatalf("ExecSync after a trim: %v, %+v", err, resp)
	}
	waitLogCount(t, d, trimmed, n+1)
	t.Logf("berthd after the second trim: %s", rssLine(t, d.PID()))
}

// waitLogCount waits until berthd's log has msg at least n times and
// returns how many times it has it.
func waitLogCount(t *testing.T, d *framework.Daemon, msg string, n int) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		data, _ := os.ReadFile(d.LogPath)
		if c := strings.Count(string(data), msg); c >= n {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("berthd logged %q %d times in 20 s, want %d", msg, strings.Count(string(data), msg), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rssLine is a process's RSS and its anonymous and file-backed parts.
func rssLine(t *testing.T, pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && (k == "VmRSS" || k == "RssAnon" || k == "RssFile") {
			out = append(out, k+" "+strings.TrimSpace(v))
		}
	}
	return strings.Join(out, ", ")
}
