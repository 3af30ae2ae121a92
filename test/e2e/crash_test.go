package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// TestCrashChurn kills berthd with SIGKILL at 8 moments while three
// kubelet-like workers create, restart and remove pods and an image worker
// pulls from a loopback registry and removes images: kills at random
// moments and kills aimed into StopPodSandbox, RemovePodSandbox, PullImage
// and RemoveImage. After every restart it checks that no pod or container
// is listed twice, that what is listed is really there, that the host holds
// nothing without a record, and that the image store on disk matches the
// image records; at the end nothing may leak. BenchmarkCrashChurn
// (test/bench) is the 100-point version. berthd runs with its default
// network.prepare_ahead (the framework's daemons turn it off): kills also
// land in a preparation and in a create that took a prepared network.
func TestCrashChurn(t *testing.T) {
	d := framework.StartDaemon(t, framework.Options{Config: "[network]\nprepare_ahead = true\n"})
	res := d.CrashChurn(t, framework.ChurnOptions{Workers: 3, KillPoints: 8, Images: 3})
	res.Log(t)
	for _, v := range res.Violations {
		t.Errorf("violation: %s", v)
	}
	for _, l := range res.Leaks {
		t.Errorf("leak: %s", l)
	}
}

// TestCrashWindows replays, deterministically, the crash windows the churn
// found, each by killing berthd and doing by hand the step the dead daemon's
// orphaned child (or its unfinished request) would have done.
func TestCrashWindows(t *testing.T) {
	d := framework.StartDaemon(t, framework.Options{})
	ctx := framework.Ctx(t)
	runc := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(framework.Runc(), append([]string{"--root", d.RuncRoot()}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("runc %v: %v: %s", args, err, out)
		}
	}

	// Killed between the runtime's start and the record's update: after
	// the restart the container is RUNNING, not CREATED.
	pod := d.PodConfig(t, "started")
	podID := d.RunPod(t, pod)
	started := d.CreateContainer(t, podID, pod, framework.ContainerConfig("app", "sleep", "3600"))
	d.Kill9(t)
	runc("start", started)
	d.Restart(t)
	if st := d.ContainerStatus(t, started); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("container started just before the kill: %v after restart, want RUNNING", st.State)
	}

	// The dead daemon's runtime start finishes after the restart's
	// reconcile: the retried StartContainer finds it running and succeeds.
	late := d.CreateContainer(t, podID, pod, framework.ContainerConfig("late", "sleep", "3600"))
	d.Kill9(t)
	d.Restart(t)
	runc("start", late)
	if _, err := d.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: late}); err != nil {
		t.Errorf("StartContainer of a container an orphaned start already started: %v", err)
	}
	if st := d.ContainerStatus(t, late); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("late-started container: %v, want RUNNING", st.State)
	}

	// Killed in the middle of a start, after it read the exec fifo's byte
	// (the container's process runs) and before it removed the fifo (runc
	// still says created): the restart finishes the start and records it
	// RUNNING, as kubelet then reads it (a retried start, for a CREATED
	// one, would have waited for a byte that never comes).
	halfStarted := d.CreateContainer(t, podID, pod, framework.ContainerConfig("halfstarted", "sleep", "3600"))
	d.Kill9(t)
	fifo := filepath.Join(d.RuncRoot(), halfStarted, "exec.fifo")
	if out, err := exec.Command("sh", "-c", "head -c 1 "+fifo+" >/dev/null").CombinedOutput(); err != nil {
		t.Fatalf("reading %s: %v: %s", fifo, err, out)
	}
	d.Restart(t)
	if st := d.ContainerStatus(t, halfStarted); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("half-started container after the restart: %v, want RUNNING", st.State)
	}
	if _, err := os.Lstat(fifo); !os.IsNotExist(err) {
		t.Errorf("half-started container's exec fifo left (runc says created): %v", err)
	}

	// Killed in the middle of a start, after berth-monitor was asked to
	// hold the exec fifo and before berthd read it: the monitor is the
	// fifo's reader, so init's byte is written (not EPIPE, which would end
	// the container before it started) and the container's process runs
	// with berthd down. The restart records it RUNNING (kubelet makes a
	// new container for a CREATED one: two would run).
	held := d.CreateContainer(t, podID, pod, framework.ContainerConfig("held", "sleep", "3600"))
	d.Kill9(t)
	bundle := filepath.Join(d.StateDir, "containers", held)
	fifo = filepath.Join(d.RuncRoot(), held, "exec.fifo")
	if err := os.Symlink(fifo, filepath.Join(bundle, "exec.fifo")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "ctl"), []byte("3 0 0\n"), 0); err != nil {
		t.Fatal(err)
	}
	var st struct {
		Pid int `json:"init_process_pid"`
	}
	if b, err := os.ReadFile(filepath.Join(d.RuncRoot(), held, "state.json")); err != nil || json.Unmarshal(b, &st) != nil {
		t.Fatalf("runc state of %s: %v", held, err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", st.Pid))
		if strings.TrimSpace(string(comm)) == "sleep" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container's process did not start with the monitor holding its exec fifo: comm %q", comm)
		}
		time.Sleep(10 * time.Millisecond)
	}
	d.Restart(t)
	if st := d.ContainerStatus(t, held); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("held container after the restart: %v, want RUNNING", st.State)
	}

	// Killed in the middle of StopPodSandbox, after the first namespace
	// was unpinned: the restart finishes the stop, so the NOTREADY pod
	// holds no mounts and no lease.
	stopping := d.PodConfig(t, "stopping")
	stoppingID := d.RunPod(t, stopping)
	d.Kill9(t)
	dir := filepath.Join(d.StateDir, "sandboxes", stoppingID)
	if err := syscall.Unmount(filepath.Join(dir, "ipcns"), syscall.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	d.Restart(t)
	if st := d.PodStatus(t, stoppingID); st.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("half-stopped pod after restart: %v, want NOTREADY", st.State)
	}
	for _, m := range d.Mounts() {
		if strings.HasPrefix(m, dir+"/") {
			t.Errorf("half-stopped pod still has %s mounted", m)
		}
	}
	for _, ip := range framework.Leases(d.LeaseDir()) {
		if ip == d.PodStatus(t, stoppingID).GetNetwork().GetIp() {
			t.Errorf("half-stopped pod still holds its lease %s", ip)
		}
	}
}

// TestStartOutlivesCaller: a StartContainer whose caller gives up while the
// runtime's start runs (kubelet's deadline, or a connection lost with a
// crash) still ends with a running container. Killing `runc start` there
// could leave the container running while runc says "created", and every
// later start blocked on its exec fifo. The handler's runtime is runc behind
// a wrapper that makes start take half a second.
func TestStartOutlivesCaller(t *testing.T) {
	wrapper := filepath.Join(t.TempDir(), "slow-start-runc")
	script := "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = start ] && sleep 0.5; done\nexec runc \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	d := framework.StartDaemon(t, framework.Options{Config: fmt.Sprintf("[runtimes.slowstart]\npath = %q\n", wrapper)})
	pod := d.PodConfig(t, "slowstart")
	resp, err := d.Runtime.RunPodSandbox(framework.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: pod, RuntimeHandler: "slowstart"})
	if err != nil {
		t.Fatal(err)
	}
	id := d.CreateContainer(t, resp.PodSandboxId, pod, framework.ContainerConfig("app", "sleep", "3600"))
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if _, err := d.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("StartContainer with a 150ms deadline through a 500ms start: %v, want DeadlineExceeded", err)
	}
	d.WaitForState(t, id, runtimeapi.ContainerState_CONTAINER_RUNNING, 5*time.Second)
}
