package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// The pause process of a shared-PID pod, which berthd starts itself
// (no runtime): isolation as its pod's containers see it, zombies,
// restarts.

func sharedPIDPod(t *testing.T, d *framework.Daemon, name string) (*runtimeapi.PodSandboxConfig, string) {
	t.Helper()
	pod := d.PodConfig(t, name)
	pod.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	return pod, d.RunPod(t, pod)
}

func inSharedPID(cfg *runtimeapi.ContainerConfig) *runtimeapi.ContainerConfig {
	cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	return cfg
}

// pausePIDs returns the host pids of pod podID's pause processes, found as
// berthd finds them: by the pod dir in their environment.
func pausePIDs(t *testing.T, podID string) []int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, []byte("BERTH_POD_DIR=")); ok && filepath.Base(string(v)) == podID {
				out = append(out, pid)
			}
		}
	}
	return out
}

func TestDirectPauseIsolation(t *testing.T) {
	d := framework.Shared(t)
	pod, podID := sharedPIDPod(t, d, "pauseiso")
	checkDirectPause(t, d, pod, podID)
}

// checkDirectPause checks what the pod's containers and the host see of the
// shared-PID pod's pause process, then stops and removes the pod.
func checkDirectPause(t *testing.T, d *framework.Daemon, pod *runtimeapi.PodSandboxConfig, podID string) {
	t.Helper()
	d.RunContainer(t, podID, pod, inSharedPID(framework.Sh("sleeper", "exec sleep 4242")))

	// Root in the pod with CAP_SYS_PTRACE, which /proc/1/{root,cwd,fd}
	// of a process of another uid that is not dumpable asks for.
	look := inSharedPID(framework.Sh("looker", `sleep 0.3
echo "cmd=$(tr '\0' ' ' </proc/1/cmdline)"
for k in Uid Gid Groups CapInh CapPrm CapEff CapBnd CapAmb NoNewPrivs Threads; do echo "$k=$(awk -v k="$k:" '$1 == k {$1=""; print substr($0, 2)}' /proc/1/status)"; done
echo "root=$(ls -A /proc/1/root | tr '\n' ,)"
echo "rootlink=$(readlink /proc/1/root)"
echo "cwd=$(ls -A /proc/1/cwd | tr '\n' ,)"
echo "fd=$(ls -l /proc/1/fd | grep -v '^total' | tr '\n' ,)"
echo "mounts=$(wc -l </proc/1/mountinfo)"
ps -o pid,args | grep -v grep | grep -q 'sleep 4242' && echo neighbour=yes
true`))
	secCtx(look).Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"SYS_PTRACE"}}
	st, out := runToExit(t, d, podID, pod, look)
	if st.ExitCode != 0 {
		t.Fatalf("looker: exit %d:\n%s", st.ExitCode, out)
	}
	kv := keyValues(strings.Split(out, "\n"))
	want := map[string]string{
		// One process, isolated in the exec berthd made (no second one).
		"cmd":  "berth-pause --isolate ",
		"Uid":  "65535 65535 65535 65535",
		"Gid":  "65535 65535 65535 65535",
		"root": "", "rootlink": "/", "cwd": "", "fd": "",
		// Its mount namespace holds its empty root alone.
		"mounts":    "1",
		"neighbour": "yes",
	}
	for _, c := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		want[c] = "0000000000000000"
	}
	want["NoNewPrivs"] = "1"
	// Single-threaded C: its credentials are the whole process's.
	want["Threads"] = "1"
	want["Groups"] = ""
	for k, v := range want {
		if got := strings.Join(strings.Fields(kv[k]), " "); got != strings.TrimSpace(v) {
			t.Errorf("PID 1 as a container sees it: %s = %q, want %q", k, kv[k], v)
		}
	}
	if t.Failed() {
		t.Logf("looker's output:\n%s", out)
	}

	// Without CAP_SYS_PTRACE (the default) root in the pod gets nothing:
	// root, cwd and environment are refused (PID 1 is not dumpable), and
	// the fd dir, which root may list, is empty.
	plain := inSharedPID(framework.Sh("plain", `for f in root cwd; do ls /proc/1/$f >/dev/null 2>&1 || echo "$f=denied"; done
cat /proc/1/environ >/dev/null 2>&1 || echo environ=denied
echo "fd=$(ls -A /proc/1/fd | tr '\n' ,)"`))
	_, out = runToExit(t, d, podID, pod, plain)
	kv = keyValues(strings.Split(out, "\n"))
	if kv["root"] != "denied" || kv["cwd"] != "denied" || kv["environ"] != "denied" || kv["fd"] != "" {
		t.Errorf("a default container reaches PID 1's root, cwd, environment or fds:\n%s", out)
	}

	// Orphans are reparented to PID 1, which reaps them.
	reap := inSharedPID(framework.Sh("orphans", `for i in 1 2 3 4 5; do (sleep 0.1 &); done; sleep 1.5
echo "zombies=$(cat /proc/[0-9]*/stat 2>/dev/null | awk '$3 == "Z"' | wc -l)"`))
	_, out = runToExit(t, d, podID, pod, reap)
	if kv := keyValues(strings.Split(out, "\n")); kv["zombies"] != "0" {
		t.Errorf("zombies left in the pod's PID namespace: %q\n%s", kv["zombies"], out)
	}

	// On the host: one pause process, in the pod's cgroup in every
	// hierarchy, not berthd's child's session.
	pids := pausePIDs(t, podID)
	if len(pids) != 1 {
		t.Fatalf("pause processes of the pod on the host: %v, want one", pids)
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pids[0])); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "Rss:") || strings.HasPrefix(l, "Pss:") {
				t.Logf("pause process %s", strings.Join(strings.Fields(l), " "))
			}
		}
	}
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pids[0]))
	if err != nil {
		t.Fatal(err)
	}
	wantCg := pod.Linux.CgroupParent + "/" + podID
	for _, l := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
		if !strings.HasSuffix(l, ":"+wantCg) {
			t.Errorf("pause process's cgroup %q, want %s in every hierarchy", l, wantCg)
		}
	}

	// Stopping the pod kills it, and with it everything in its PID namespace.
	if _, err := d.Runtime.StopPodSandbox(framework.Ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	if left := pausePIDs(t, podID); len(left) != 0 {
		t.Errorf("pause process left after StopPodSandbox: %v", left)
	}
	if _, err := d.Runtime.RemovePodSandbox(framework.Ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
}

// TestDirectPauseKill9: a shared-PID pod outlives berthd's SIGKILL: the
// restarted berthd finds its pause process, runs new containers in the
// pod, and removes it leaving nothing.
func TestDirectPauseKill9(t *testing.T) {
	d := framework.StartDaemon(t, framework.Options{})
	pod, podID := sharedPIDPod(t, d, "pausekill")
	d.RunContainer(t, podID, pod, inSharedPID(framework.Sh("sleeper", "exec sleep 4242")))
	before := pausePIDs(t, podID)
	if len(before) != 1 {
		t.Fatalf("pause processes: %v, want one", before)
	}

	d.Kill9(t)
	d.Restart(t)

	if got := pausePIDs(t, podID); len(got) != 1 || got[0] != before[0] {
		t.Fatalf("pause processes after restart: %v, want the same %v", got, before)
	}
	if ps := d.PodStatus(t, podID); ps.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("pod after restart: %v, want READY", ps.State)
	}
	look := inSharedPID(framework.Sh("after", "ps -o pid,args; echo pid1=$(tr '\\0' ' ' </proc/1/cmdline)"))
	st, out := runToExit(t, d, podID, pod, look)
	if st.ExitCode != 0 || !strings.Contains(out, "sleep 4242") || !strings.Contains(out, "pid1=berth-pause --isolate") {
		t.Errorf("container started after the restart: exit %d, want it to see the sleeper and pause as PID 1:\n%s", st.ExitCode, out)
	}

	if _, err := d.Runtime.StopPodSandbox(framework.Ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Runtime.RemovePodSandbox(framework.Ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(pausePIDs(t, podID)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("pause process left after RemovePodSandbox: %v", pausePIDs(t, podID))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDirectPauseMemory logs what pause processes cost: the PSS of each of
// ten (they share the pages of one sealed copy of the binary).
func TestDirectPauseMemory(t *testing.T) {
	d := framework.Shared(t)
	var pids []int
	for i := 0; i < 10; i++ {
		_, podID := sharedPIDPod(t, d, fmt.Sprintf("pausemem%d", i))
		pids = append(pids, pausePIDs(t, podID)...)
	}
	if len(pids) != 10 {
		t.Fatalf("pause processes: %v, want ten", pids)
	}
	var pss, rss []string
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) == 3 && f[0] == "Pss:" {
				pss = append(pss, f[1])
			}
			if len(f) == 3 && f[0] == "Rss:" {
				rss = append(rss, f[1])
			}
		}
	}
	t.Logf("10 pause processes: PSS kB %v, RSS kB %v", pss, rss)
}

// TestDirectPauseExits: a process of the pod ends PID 1 (SIGTERM, which
// berth-pause obeys as Kubernetes' pause does): the pod's PID namespace
// dies with every process in it, and the pod turns NOTREADY so that
// kubelet makes a new one.
func TestDirectPauseExits(t *testing.T) {
	d := framework.Shared(t)
	pod, podID := sharedPIDPod(t, d, "pauseexit")
	sleeper := d.RunContainer(t, podID, pod, inSharedPID(framework.Sh("sleeper", "exec sleep 4242")))
	killer := inSharedPID(framework.Sh("killer", "kill -TERM 1; sleep 10"))
	d.RunContainer(t, podID, pod, killer)
	deadline := time.Now().Add(10 * time.Second)
	for d.PodStatus(t, podID).State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		if time.Now().After(deadline) {
			t.Fatalf("pod still %v 10 s after its pause process was told to exit", d.PodStatus(t, podID).State)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if left := pausePIDs(t, podID); len(left) != 0 {
		t.Errorf("pause process left: %v", left)
	}
	d.WaitForState(t, sleeper, runtimeapi.ContainerState_CONTAINER_EXITED, 10*time.Second)
	if _, err := d.Runtime.StopPodSandbox(framework.Ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Runtime.RemovePodSandbox(framework.Ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
}
