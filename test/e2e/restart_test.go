package e2e

import (
	"slices"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// TestKill9Recovery kills berthd with SIGKILL while one container runs and
// another is about to exit, then restarts it: the running one still runs
// (same processes), the exited one shows its exit code, nothing is listed twice.
func TestKill9Recovery(t *testing.T) {
	d := framework.StartDaemon(t, framework.Options{})
	runPod := d.PodConfig(t, "survivor")
	runPodID := d.RunPod(t, runPod)
	runCfg := framework.Sh("ticker", "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.2; done")
	runner := d.RunContainer(t, runPodID, runPod, runCfg)

	exitPod := d.PodConfig(t, "exiter")
	exitPodID := d.RunPod(t, exitPod)
	exitCfg := framework.Sh("exiter", "echo started; sleep 2; exit 7")
	exiter := d.RunContainer(t, exitPodID, exitPod, exitCfg)

	framework.WaitForLog(t, framework.LogPath(runPod, runCfg), "tick1", 10*time.Second)
	framework.WaitForLog(t, framework.LogPath(exitPod, exitCfg), "started", 10*time.Second)
	pids := initPIDs(t, runPod)
	if len(pids) != 1 {
		t.Fatalf("want one container init process in the cgroups below %s, got %v", runPod.Linux.CgroupParent, pids)
	}

	killedAt := time.Now()
	d.Kill9(t)
	// Wait for the exiter to exit while berthd is down.
	deadline := time.Now().Add(15 * time.Second)
	for len(allProcs(t, exitPod)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("exiter still has processes %v after 15s", allProcs(t, exitPod))
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.Restart(t)

	st := d.ContainerStatus(t, runner)
	if st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("runner after restart: %v, want RUNNING", st.State)
	}
	if got := initPIDs(t, runPod); !slices.Equal(got, pids) {
		t.Errorf("runner init process %v after restart, want the same %v", got, pids)
	}
	st = d.WaitForState(t, exiter, runtimeapi.ContainerState_CONTAINER_EXITED, 10*time.Second)
	if st.ExitCode != 7 || st.Reason != "Error" {
		t.Errorf("exiter: exit %d reason %q, want 7 Error", st.ExitCode, st.Reason)
	}
	if fin := time.Unix(0, st.FinishedAt); fin.Before(killedAt) || fin.After(time.Now()) {
		t.Errorf("exiter finished_at %v, want between the kill (%v) and now", fin, killedAt)
	}
	if got := containerIDs(t, d, nil); !equalIDs(got, sorted(runner, exiter)) {
		t.Errorf("containers after restart: %v, want %v", got, sorted(runner, exiter))
	}
	if got := podIDs(t, d, nil); !equalIDs(got, sorted(runPodID, exitPodID)) {
		t.Errorf("pods after restart: %v, want %v", got, sorted(runPodID, exitPodID))
	}
	for _, id := range []string{runPodID, exitPodID} {
		if ps := d.PodStatus(t, id); ps.State != runtimeapi.PodSandboxState_SANDBOX_READY {
			t.Errorf("pod %s after restart: %v, want READY", id, ps.State)
		}
	}
	// conmon kept writing the log while berthd was away, and still does.
	n := len(framework.ReadLog(t, framework.LogPath(runPod, runCfg)))
	time.Sleep(500 * time.Millisecond)
	if m := len(framework.ReadLog(t, framework.LogPath(runPod, runCfg))); m <= n {
		t.Errorf("runner's log stopped growing after restart (%d lines)", m)
	}
	// The restarted daemon controls what the old one started.
	if _, err := d.Runtime.StopContainer(framework.Ctx(t), &runtimeapi.StopContainerRequest{ContainerId: runner, Timeout: 1}); err != nil {
		t.Fatalf("StopContainer after restart: %v", err)
	}
	if st := d.ContainerStatus(t, runner); st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Errorf("runner after stop: %v", st.State)
	}
}

// TestSIGTERMKeepsContainers stops berthd cleanly: the container keeps
// running and the restarted daemon lists it once, still running.
func TestSIGTERMKeepsContainers(t *testing.T) {
	d := framework.StartDaemon(t, framework.Options{})
	pod := d.PodConfig(t, "term")
	podID := d.RunPod(t, pod)
	id := d.RunContainer(t, podID, pod, framework.Sh("sleeper", "sleep 1000"))
	d.WaitForState(t, id, runtimeapi.ContainerState_CONTAINER_RUNNING, 10*time.Second)
	pids := initPIDs(t, pod)
	if len(pids) != 1 {
		t.Fatalf("want one container init process below %s, got %v", pod.Linux.CgroupParent, pids)
	}

	d.Stop(t)
	if got := initPIDs(t, pod); !slices.Equal(got, pids) {
		t.Fatalf("after SIGTERM of berthd the container's processes are %v, want %v", got, pids)
	}
	d.Restart(t)
	if got := containerIDs(t, d, nil); !equalIDs(got, []string{id}) {
		t.Errorf("containers after restart: %v, want [%s]", got, id)
	}
	if got := podIDs(t, d, nil); !equalIDs(got, []string{podID}) {
		t.Errorf("pods after restart: %v, want [%s]", got, podID)
	}
	if st := d.ContainerStatus(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("container after restart: %v, want RUNNING", st.State)
	}
}
