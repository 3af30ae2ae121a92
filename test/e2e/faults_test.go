package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// Fault injection: each dependency of berthd fails (the OCI runtime, conmon,
// the image store's disk, the registry, CNI plugins) and berthd is killed
// while it does. Every failure must end the call with an error naming the
// cause, leave nothing behind, and leave the node so that the next call of
// the same kind succeeds once the fault is gone. Registry faults (dying
// mid-pull, stalling) are in pull_test.go, CNI ADD faults in
// network_test.go; this file covers the rest.

// faultyRuntime is an OCI runtime handler that is runc unless its mode file
// names a fault for the subcommand conmon or berthd runs:
//
//	create-fail, start-fail   print a message on stderr and exit 1
//	create-hang               exec sleep (killed with its parent: conmon
//	                          sets PDEATHSIG), pid recorded in hang.pids
//	start-hold                wait while the file "hold" exists, then fail
//	delete-hold               wait while the file "hold" exists, then delete
//
// The mode is read when the runtime starts, so changing it affects only the
// next runtime command.
type faultyRuntime struct {
	dir  string
	path string
}

const faultyHandler = "faulty"

func newFaultyRuntime(t *testing.T) *faultyRuntime {
	t.Helper()
	dir := t.TempDir()
	r := &faultyRuntime{dir: dir, path: filepath.Join(dir, "faulty-runc")}
	script := fmt.Sprintf(`#!/bin/sh
dir=%q
mode=$(cat "$dir/mode" 2>/dev/null)
sub=
for a in "$@"; do
	case "$a" in create|start|delete) sub=$a; break ;; esac
done
case "$sub:$mode" in
create:create-fail) echo "e2e-runtime: injected create failure" >&2; exit 1 ;;
start:start-fail) echo "e2e-runtime: injected start failure" >&2; exit 1 ;;
create:create-hang) echo $$ >> "$dir/hang.pids"; exec sleep 600 ;;
start:start-hold)
	echo $$ >> "$dir/hold.pids"
	while [ -e "$dir/hold" ]; do sleep 0.05; done
	echo "e2e-runtime: start was held, then failed" >&2; exit 1 ;;
delete:delete-hold)
	echo $$ >> "$dir/hold.pids"
	while [ -e "$dir/hold" ]; do sleep 0.05; done ;;
esac
exec runc "$@"
`, dir)
	if err := os.WriteFile(r.path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *faultyRuntime) config() string {
	return fmt.Sprintf("[runtimes.%s]\npath = %q\n", faultyHandler, r.path)
}

func (r *faultyRuntime) set(t *testing.T, mode string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, "mode"), []byte(mode), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (r *faultyRuntime) hold(t *testing.T, on bool) {
	t.Helper()
	p := filepath.Join(r.dir, "hold")
	if on {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
}

// pids lists the pids the runtime recorded in file (hang.pids, hold.pids).
func (r *faultyRuntime) pids(file string) []int {
	data, _ := os.ReadFile(filepath.Join(r.dir, file))
	var out []int
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// waitGone fails t unless every pid of file is gone (or a zombie) within
// timeout; it kills those left so that the machine stays clean.
func (r *faultyRuntime) waitGone(t *testing.T, file, what string, timeout time.Duration) {
	t.Helper()
	pids := r.pids(file)
	if len(pids) == 0 {
		t.Fatalf("%s: the runtime recorded no pid in %s", what, file)
	}
	if !waitUntil(timeout, func() bool { return !slices.ContainsFunc(pids, procAlive) }) {
		for _, pid := range pids {
			if procAlive(pid) {
				t.Errorf("%s: runtime process %d still runs", what, pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	_ = os.Remove(filepath.Join(r.dir, file))
}

// procAlive says pid exists and is not a zombie.
func procAlive(pid int) bool {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(st), ')')
	return i > 0 && i+2 < len(st) && st[i+2] != 'Z'
}

// runPodWith runs pod on a runtime handler.
func runPodWith(t *testing.T, d *framework.Daemon, pod *runtimeapi.PodSandboxConfig, handler string) string {
	t.Helper()
	resp, err := d.Runtime.RunPodSandbox(framework.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: pod, RuntimeHandler: handler})
	if err != nil {
		t.Fatalf("RunPodSandbox(%s, handler %s): %v", pod.Metadata.Name, handler, err)
	}
	return resp.PodSandboxId
}

func createContainerErr(ctx context.Context, t *testing.T, d *framework.Daemon, podID string, pod *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) error {
	t.Helper()
	framework.MakeLogDir(t, pod, cfg)
	resp, err := d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: pod})
	if err == nil {
		t.Fatalf("CreateContainer(%s) succeeded (%s), want an error", cfg.Metadata.Name, resp.ContainerId)
	}
	return err
}

func wantErrContains(t *testing.T, what string, err error, parts ...string) {
	t.Helper()
	t.Logf("%s: %v", what, err)
	for _, p := range parts {
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %v does not say %q", what, err, p)
		}
	}
}

// conmons lists the conmon processes of the daemon.
func conmons(d *framework.Daemon) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(data), "\x00")
		if framework.IsMonitor(args[0]) && strings.Contains(string(data), "\x00"+d.StateDir+"/") {
			out = append(out, e.Name())
		}
	}
	return out
}

// runtimeList lists the containers the OCI runtime knows under handler's
// root in the daemon's state dir.
func runtimeList(t *testing.T, d *framework.Daemon, handler string) []string {
	t.Helper()
	root := filepath.Join(d.StateDir, "runtimes", handler)
	if _, err := os.Stat(root); os.IsNotExist(err) {
		return nil
	}
	bin := "runc" // the faulty handler wraps the runc on PATH
	if handler == "runc" {
		bin = framework.Runc()
	}
	out, err := exec.Command(bin, "--root", root, "list", "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("runc --root %s list: %v: %s", root, err, out)
	}
	ids := strings.Fields(string(out))
	sort.Strings(ids)
	return ids
}

// assertContainers checks that the daemon has exactly the containers ids
// (all on handler): listed, with bundle and writable-layer dirs, runtime
// state and one conmon each, and nothing else.
func assertContainers(t *testing.T, d *framework.Daemon, handler string, ids ...string) {
	t.Helper()
	want := sorted(ids...)
	// Cleanup of an abandoned call finishes after the client gave up.
	var got map[string][]string
	ok := waitUntil(10*time.Second, func() bool {
		got = map[string][]string{
			"listed":           containerIDs(t, d, nil),
			"bundle dirs":      sorted(dirNames(t, filepath.Join(d.StateDir, "containers"))...),
			"writable layers":  sorted(dirNames(t, filepath.Join(d.Root, "containers"))...),
			"runtime state":    runtimeList(t, d, handler),
			"exit files":       nil,
			"conmon processes": nil,
		}
		for _, f := range sorted(dirNames(t, filepath.Join(d.StateDir, "exits"))...) {
			if !slices.Contains(want, f) {
				got["exit files"] = append(got["exit files"], f)
			}
		}
		for k, v := range got {
			if k == "exit files" {
				if len(v) > 0 {
					return false
				}
				continue
			}
			if k == "conmon processes" {
				continue
			}
			if !equalIDs(v, want) {
				return false
			}
		}
		return true
	})
	if !ok {
		for k, v := range got {
			if k != "conmon processes" && k != "exit files" && !equalIDs(v, want) {
				t.Errorf("%s: %v, want %v", k, v, want)
			}
		}
		if len(got["exit files"]) > 0 {
			t.Errorf("exit files of unknown containers: %v", got["exit files"])
		}
	}
}

// TestFaultRuntime runs containers on a runtime that fails at create and at
// start, hangs at create and at start, and berthd killed during each hang.
func TestFaultRuntime(t *testing.T) {
	rt := newFaultyRuntime(t)
	d := framework.StartDaemon(t, framework.Options{Config: rt.config()})
	ctx := framework.Ctx(t)
	pod := d.PodConfig(t, "faulty")
	podID := runPodWith(t, d, pod, faultyHandler)
	sleeper := func(name string) *runtimeapi.ContainerConfig { return framework.ContainerConfig(name, "sleep", "3600") }

	// Create fails: the runtime's message reaches the caller, nothing is
	// left, and the same name can be created once the runtime works.
	rt.set(t, "create-fail")
	err := createContainerErr(ctx, t, d, podID, pod, sleeper("a"))
	wantErrContains(t, "CreateContainer on a failing runtime", err, "e2e-runtime: injected create failure", faultyHandler+" create")
	assertContainers(t, d, faultyHandler)
	rt.set(t, "")
	a := d.CreateContainer(t, podID, pod, sleeper("a"))
	assertContainers(t, d, faultyHandler, a)

	// Start fails: the container stays CREATED and starts on the retry.
	rt.set(t, "start-fail")
	_, err = d.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: a})
	wantErrContains(t, "StartContainer on a failing runtime", err, "e2e-runtime: injected start failure", faultyHandler+" start")
	if st := d.ContainerStatus(t, a); st.State != runtimeapi.ContainerState_CONTAINER_CREATED {
		t.Errorf("container whose start failed: %v, want CREATED", st.State)
	}
	rt.set(t, "")
	d.StartContainer(t, a)
	d.WaitForState(t, a, runtimeapi.ContainerState_CONTAINER_RUNNING, 10*time.Second)

	// Create hangs: the caller's deadline ends it, conmon and the hung
	// runtime are killed, and nothing is left.
	rt.set(t, "create-hang")
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	err = createContainerErr(short, t, d, podID, pod, sleeper("b"))
	cancel()
	wantCode(t, "CreateContainer on a hanging runtime", err, codes.DeadlineExceeded)
	rt.waitGone(t, "hang.pids", "hung create after the deadline", 10*time.Second)
	assertContainers(t, d, faultyHandler, a)
	rt.set(t, "")
	b := d.CreateContainer(t, podID, pod, sleeper("b"))
	assertContainers(t, d, faultyHandler, a, b)

	// berthd killed during a hanging create: the restart reaps conmon and
	// the runtime, and the create works once the runtime does.
	rt.set(t, "create-hang")
	errc := make(chan error, 1)
	kubelet, _ := d.Dial(t) // its calls die with berthd, not before
	go func() {
		cfg := sleeper("c")
		framework.MakeLogDir(t, pod, cfg)
		_, err := kubelet.CreateContainer(context.Background(), &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: pod})
		errc <- err
	}()
	if !waitUntil(10*time.Second, func() bool { return len(rt.pids("hang.pids")) > 0 }) {
		t.Fatal("the runtime's create never started")
	}
	d.Kill9(t)
	if err := <-errc; err == nil {
		t.Errorf("CreateContainer cut by the kill succeeded")
	}
	if !slices.ContainsFunc(rt.pids("hang.pids"), procAlive) {
		t.Errorf("the hung create ended with berthd's kill: the restart's reaping is not tested")
	}
	rt.set(t, "")
	d.Restart(t)
	rt.waitGone(t, "hang.pids", "hung create after berthd's restart", 10*time.Second)
	assertContainers(t, d, faultyHandler, a, b)
	c := d.CreateContainer(t, podID, pod, sleeper("c"))

	// Start hangs past the caller's deadline; berthd is killed while it
	// hangs; once the runtime is back the retried start succeeds.
	rt.set(t, "start-hold")
	rt.hold(t, true)
	short, cancel = context.WithTimeout(ctx, 2*time.Second)
	_, err = d.Runtime.StartContainer(short, &runtimeapi.StartContainerRequest{ContainerId: b})
	cancel()
	wantCode(t, "StartContainer on a hanging runtime", err, codes.DeadlineExceeded)
	d.Kill9(t)
	rt.set(t, "")
	rt.hold(t, false)
	rt.waitGone(t, "hold.pids", "held start once released", 10*time.Second)
	d.Restart(t)
	if st := d.ContainerStatus(t, b); st.State != runtimeapi.ContainerState_CONTAINER_CREATED {
		t.Errorf("container whose start hung when berthd was killed: %v after restart, want CREATED", st.State)
	}
	d.StartContainer(t, b)
	d.StartContainer(t, c)
	for _, id := range []string{a, b, c} {
		d.WaitForState(t, id, runtimeapi.ContainerState_CONTAINER_RUNNING, 10*time.Second)
	}
	assertContainers(t, d, faultyHandler, a, b, c)
	if n := len(conmons(d)); n != 3 {
		t.Errorf("%d conmon processes for 3 containers", n)
	}

	// Delete hangs. The exit is still recorded (StopContainer returns),
	// and exits of other containers too while that delete hangs;
	// RemoveContainer fails at its deadline and keeps the record, and the
	// retry once the runtime works removes everything.
	rt.set(t, "delete-hold")
	rt.hold(t, true)
	if _, err := d.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: a, Timeout: 0}); err != nil {
		t.Errorf("StopContainer while the runtime's delete hangs: %v", err)
	}
	quick := d.RunContainer(t, podID, pod, framework.ContainerConfig("quick", "true"))
	d.WaitForState(t, quick, runtimeapi.ContainerState_CONTAINER_EXITED, 20*time.Second)
	short, cancel = context.WithTimeout(ctx, 2*time.Second)
	_, err = d.Runtime.RemoveContainer(short, &runtimeapi.RemoveContainerRequest{ContainerId: a})
	cancel()
	wantCode(t, "RemoveContainer on a hanging runtime", err, codes.DeadlineExceeded)
	if st := d.ContainerStatus(t, a); st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Errorf("container whose removal hung: %v, want EXITED and still listed", st.State)
	}
	rt.set(t, "")
	rt.hold(t, false)
	rt.waitGone(t, "hold.pids", "held deletes once released", 10*time.Second)
	for _, id := range []string{a, quick} {
		if _, err := d.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
			t.Errorf("RemoveContainer once the runtime works: %v", err)
		}
	}
	assertContainers(t, d, faultyHandler, b, c)
}

// TestFaultConmonKilled kills a running container's conmon: the container
// is reported running while it runs and exited once it has stopped, never
// lost; its log is kept; the pod stops and is removed as usual.
func TestFaultConmonKilled(t *testing.T) {
	d := framework.StartDaemon(t, framework.Options{})
	ctx := framework.Ctx(t)
	pod := d.PodConfig(t, "conmon-killed")
	podID := d.RunPod(t, pod)
	conmonPid := func(id string) int {
		data, err := os.ReadFile(filepath.Join(d.StateDir, "containers", id, "conmon.pid"))
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil {
			t.Fatal(err)
		}
		return pid
	}
	kill := func(pid int) {
		t.Helper()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if !waitUntil(5*time.Second, func() bool { return !procAlive(pid) }) {
			t.Fatalf("pid %d alive after SIGKILL", pid)
		}
	}

	// A long-running container, stopped by kubelet after its conmon died.
	long := framework.Sh("long", "echo started; exec sleep 3600")
	longID := d.RunContainer(t, podID, pod, long)
	framework.WaitForLog(t, framework.LogPath(pod, long), "started", 10*time.Second)
	kill(conmonPid(longID))
	time.Sleep(500 * time.Millisecond)
	if st := d.ContainerStatus(t, longID); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("running container whose conmon died: %v, want RUNNING", st.State)
	}
	// A restart in between changes nothing.
	d.Restart(t)
	if st := d.ContainerStatus(t, longID); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("after restart, running container whose conmon died: %v, want RUNNING", st.State)
	}
	start := time.Now()
	if _, err := d.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: longID, Timeout: 1}); err != nil {
		t.Errorf("StopContainer without conmon: %v", err)
	}
	t.Logf("StopContainer of a container without conmon took %v", time.Since(start))
	st := d.ContainerStatus(t, longID)
	if st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.Message == "" {
		t.Errorf("stopped container without conmon: %v (%q), want EXITED with a message", st.State, st.Message)
	}
	t.Logf("status: exit code %d, reason %q, message %q", st.ExitCode, st.Reason, st.Message)
	if texts := framework.LogTexts(t, framework.LogPath(pod, long)); !slices.Contains(texts, "started") {
		t.Errorf("log of the container after its conmon died: %q", texts)
	}

	// A container that exits on its own after its conmon died is seen to
	// have exited, without any call on it.
	short := framework.Sh("short", "echo started; sleep 2")
	shortID := d.RunContainer(t, podID, pod, short)
	framework.WaitForLog(t, framework.LogPath(pod, short), "started", 10*time.Second)
	kill(conmonPid(shortID))
	st = d.WaitForState(t, shortID, runtimeapi.ContainerState_CONTAINER_EXITED, 30*time.Second)
	t.Logf("self-exited container without conmon: exit code %d, reason %q, message %q", st.ExitCode, st.Reason, st.Message)
	if st.Message == "" {
		t.Errorf("exited container without conmon has no message saying why its exit code is unknown")
	}
	if texts := framework.LogTexts(t, framework.LogPath(pod, short)); !slices.Contains(texts, "started") {
		t.Errorf("log of the self-exited container: %q", texts)
	}
	if _, err := d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	// Logs belong to kubelet: removing the pod keeps them.
	for _, cfg := range []*runtimeapi.ContainerConfig{long, short} {
		if _, err := os.Stat(framework.LogPath(pod, cfg)); err != nil {
			t.Errorf("log of %s after the pod was removed: %v", cfg.Metadata.Name, err)
		}
	}
	// And a new container runs normally.
	pod2 := d.PodConfig(t, "after-conmon")
	id := d.RunContainer(t, d.RunPod(t, pod2), pod2, framework.ContainerConfig("x", "sleep", "3600"))
	d.WaitForState(t, id, runtimeapi.ContainerState_CONTAINER_RUNNING, 10*time.Second)
}

// fill writes a file into dir until the filesystem is out of blocks and,
// with inodes, then empty files until it is out of inodes too. It returns a
// function that removes them again.
func fill(t *testing.T, dir string, inodes bool) func() {
	t.Helper()
	fillDir, err := os.MkdirTemp(dir, "e2e-fill-")
	if err != nil {
		t.Fatal(err)
	}
	big, err := os.Create(filepath.Join(fillDir, "big"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for _, n := range []int{1 << 20, 4096} {
		for {
			if _, err := big.Write(buf[:n]); err != nil {
				break
			}
		}
	}
	big.Close()
	for i := 0; inodes; i++ {
		f, err := os.Create(filepath.Join(fillDir, strconv.Itoa(i)))
		if err != nil {
			break
		}
		f.Close()
	}
	return func() {
		if err := os.RemoveAll(fillDir); err != nil {
			t.Fatal(err)
		}
	}
}

func statfs(t *testing.T, dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d KiB and %d inodes free", st.Bavail*uint64(st.Bsize)>>10, st.Ffree)
}

// TestFaultDiskFull fills the image store's disk (a small tmpfs): a pull
// (out of blocks, and out of inodes) and a CreateContainer (out of inodes:
// no writable layer) fail with ResourceExhausted naming the full disk,
// leave no partial data, and work once space is freed. berthd killed while
// the disk is full comes back with its pods.
func TestFaultDiskFull(t *testing.T) {
	d := framework.StartDaemon(t, framework.Options{RootTmpfs: "size=48m,nr_inodes=4k"})
	reg := framework.StartRegistry(t, framework.RegistryOptions{})
	ref := reg.Host + "/e2e/diskfull:1"
	reg.Push(t, "e2e/diskfull:1", bigImage(t, empty.Image, 2, 8<<20))
	ctx := framework.Ctx(t)
	pod := d.PodConfig(t, "diskfull")
	podID := d.RunPod(t, pod)

	// Out of blocks: the pull fails while it writes.
	free := fill(t, d.Root, false)
	t.Logf("image store disk filled: %s", statfs(t, d.Root))
	_, err := pullImage(ctx, d, ref, nil)
	wantCode(t, "PullImage on a full disk", err, codes.ResourceExhausted)
	wantErrContains(t, "PullImage on a full disk", err, "out of space", "no space left on device")
	absent(t, d, ref)
	noPartialData(t, d)
	// A create needs inodes, not blocks, but its record may need a block:
	// it either works or fails cleanly.
	early := framework.ContainerConfig("early", "sleep", "3600")
	framework.MakeLogDir(t, pod, early)
	resp, err := d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: early, SandboxConfig: pod})
	if err != nil {
		wantCode(t, "CreateContainer with no free blocks", err, codes.ResourceExhausted)
		t.Logf("CreateContainer with no free blocks: %v", err)
		assertContainers(t, d, "runc")
	} else {
		t.Logf("CreateContainer with no free blocks succeeded")
		if _, err := d.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: resp.ContainerId}); err != nil {
			t.Errorf("RemoveContainer on a full disk: %v", err)
		}
		assertContainers(t, d, "runc")
	}
	free()

	// Out of inodes too: CreateContainer cannot make the writable layer.
	free = fill(t, d.Root, true)
	t.Logf("image store disk filled: %s", statfs(t, d.Root))
	cfg := framework.ContainerConfig("c", "sleep", "3600")
	err = createContainerErr(ctx, t, d, podID, pod, cfg)
	wantCode(t, "CreateContainer on a full disk", err, codes.ResourceExhausted)
	wantErrContains(t, "CreateContainer on a full disk", err, "no space left on device")
	assertContainers(t, d, "runc")
	_, err = pullImage(ctx, d, ref, nil)
	wantCode(t, "PullImage out of inodes", err, codes.ResourceExhausted)
	noPartialData(t, d)

	// Killed and restarted while the disk is full: berthd comes back.
	d.Kill9(t)
	d.Restart(t)
	if st := d.PodStatus(t, podID); st.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("pod after a restart on a full disk: %v", st.State)
	}

	free()
	mustPull(t, d, ref, nil)
	id := d.RunContainer(t, podID, pod, cfg)
	d.WaitForState(t, id, runtimeapi.ContainerState_CONTAINER_RUNNING, 10*time.Second)
	assertContainers(t, d, "runc", id)
}

// TestFaultKillDuringPull kills berthd while a pull from a stalled registry
// is under way: the restart keeps no partial data or image, and the pull
// then succeeds.
func TestFaultKillDuringPull(t *testing.T) {
	d := framework.StartDaemon(t, framework.Options{})
	reg := framework.StartRegistry(t, framework.RegistryOptions{})
	proxy := framework.StartRegistryProxy(t, reg.Host)
	reg.Push(t, "e2e/killpull:1", bigImage(t, empty.Image, 3, 2<<20))
	ref := proxy.Host + "/e2e/killpull:1"
	proxy.SetRate(1 << 20)
	errc := make(chan error, 1)
	_, kubelet := d.Dial(t) // its calls die with berthd, not before
	go func() {
		_, err := kubelet.PullImage(context.Background(), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
		errc <- err
	}()
	if err := framework.WaitFor(20*time.Second, func() bool { return proxy.Served() > 1<<20 }); err != nil {
		t.Fatalf("the pull did not start downloading: %v", err)
	}
	proxy.SetStalled(true)
	d.Kill9(t)
	if err := <-errc; err == nil {
		t.Errorf("pull cut by the kill succeeded")
	}
	proxy.Abort()
	proxy.SetStalled(false)
	proxy.SetRate(0)
	d.Restart(t)
	absent(t, d, ref)
	noPartialData(t, d)
	mustPull(t, d, ref, nil)
}

// cniFaultPlugin writes a CNI plugin that chains after the bridge and, by
// its mode file, fails or hangs at DEL, or hangs at ADD (which otherwise
// passes the previous result on).
func cniFaultPlugin(t *testing.T, bin string) (setMode func(string), pids func() []int) {
	t.Helper()
	dir := t.TempDir()
	script := fmt.Sprintf(`#!/bin/sh
dir=%q
mode=$(cat "$dir/mode" 2>/dev/null)
if [ "$CNI_COMMAND" = ADD ]; then
	if [ "$mode" = add-hang ]; then echo $$ >> "$dir/hang.pids"; exec sleep 600; fi
	# Pass the previous plugin's result on: libcni writes the config as
	# one line with sorted keys, prevResult just before type.
	sed 's/.*"prevResult":\(.*\),"type":"e2e-del-fault".*/\1/'
	exit 0
fi
[ "$CNI_COMMAND" = DEL ] || exit 0
case "$mode" in
del-fail) echo '{"cniVersion": "1.0.0", "code": 100, "msg": "e2e-del-fault: injected DEL failure"}'; exit 1 ;;
del-hang) echo $$ >> "$dir/hang.pids"; exec sleep 600 ;;
esac
exit 0
`, dir)
	if err := os.WriteFile(filepath.Join(bin, "e2e-del-fault"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	setMode = func(m string) {
		if err := os.WriteFile(filepath.Join(dir, "mode"), []byte(m), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pids = func() []int {
		data, _ := os.ReadFile(filepath.Join(dir, "hang.pids"))
		var out []int
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				out = append(out, pid)
			}
		}
		return out
	}
	return setMode, pids
}

// TestFaultCNIDel runs pods on a network whose last plugin fails or hangs
// at DEL: StopPodSandbox fails naming the plugin's message (or the
// deadline), the pod stays listed, and the retry once the plugin works
// releases everything. berthd killed during a hanging DEL, or a hanging
// ADD, leaves no plugin running after its restart. (Failing and hanging
// ADDs without a kill are in TestNetworkBrokenConfig.)
func TestFaultCNIDel(t *testing.T) {
	bin := t.TempDir()
	setMode, hangPIDs := cniFaultPlugin(t, bin)
	d := framework.StartDaemon(t, framework.Options{Config: fmt.Sprintf("[network]\nbin_dirs = [%q, \"/usr/lib/cni\"]\n", bin)})
	dataDir := filepath.Join(d.Dir, "leases")
	writeConflist(t, d, "10-delfault.conflist", bridgeConflist(d, "e2e-delfault", dataDir, `, {"type": "e2e-del-fault"}`))
	waitNetwork(t, d, "ready with e2e-delfault", readyWith("e2e-delfault"))
	ctx := framework.Ctx(t)
	leases := func() []string { return framework.Leases(filepath.Join(dataDir, "e2e-delfault")) }

	stop := func(ctx context.Context, id string) error {
		_, err := d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
		return err
	}
	remove := func(id string) {
		t.Helper()
		if err := stop(ctx, id); err != nil {
			t.Fatalf("StopPodSandbox once DEL works: %v", err)
		}
		if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("RemovePodSandbox: %v", err)
		}
	}

	// DEL fails.
	pod := d.PodConfig(t, "delfail")
	id := d.RunPod(t, pod)
	ip := podIP(t, d, id)
	d.RunContainer(t, id, pod, framework.ContainerConfig("c", "sleep", "3600"))
	setMode("del-fail")
	err := stop(ctx, id)
	wantErrContains(t, "StopPodSandbox with a failing DEL", err, "e2e-del-fault: injected DEL failure", "e2e-delfault")
	// A pod whose network could not be released is still listed, so that
	// kubelet retries the stop.
	if st := d.PodStatus(t, id); st.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("pod after a failed DEL: %v, want READY until its network is released", st.State)
	}
	if ids := containerIDs(t, d, &runtimeapi.ContainerFilter{PodSandboxId: id, State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}); len(ids) > 0 {
		t.Errorf("containers still running after StopPodSandbox failed at DEL: %v", ids)
	}
	if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err == nil {
		t.Errorf("RemovePodSandbox with a failing DEL succeeded")
	}
	setMode("")
	remove(id)
	if l := leases(); slices.Contains(l, ip) {
		t.Errorf("lease %s left after the retried stop: %v", ip, l)
	}

	// DEL hangs: bounded by the caller's deadline, the plugin killed.
	id = d.RunPod(t, d.PodConfig(t, "delhang"))
	setMode("del-hang")
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	err = stop(short, id)
	cancel()
	wantCode(t, "StopPodSandbox with a hanging DEL", err, codes.DeadlineExceeded)
	pids := hangPIDs()
	if len(pids) == 0 {
		t.Fatal("the hanging plugin never ran")
	}
	if !waitUntil(10*time.Second, func() bool { return !slices.ContainsFunc(pids, procAlive) }) {
		t.Errorf("hanging DEL plugin %v still runs after the deadline", pids)
	}
	setMode("")
	remove(id)

	// berthd killed during a hanging DEL: after the restart no plugin of
	// the dead daemon runs on, and the retried stop succeeds.
	id = d.RunPod(t, d.PodConfig(t, "delkill"))
	ip = podIP(t, d, id)
	setMode("del-hang")
	errc := make(chan error, 1)
	kubelet, _ := d.Dial(t) // its calls die with berthd, not before
	go func() {
		_, err := kubelet.StopPodSandbox(context.Background(), &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
		errc <- err
	}()
	if !waitUntil(10*time.Second, func() bool { return len(hangPIDs()) > len(pids) }) {
		t.Fatal("the hanging plugin never ran")
	}
	all := hangPIDs()
	d.Kill9(t)
	<-errc
	setMode("")
	if !slices.ContainsFunc(all, procAlive) {
		t.Fatalf("DEL plugins %v ended with berthd's kill: the restart is not tested", all)
	}
	d.Restart(t)
	if !waitUntil(10*time.Second, func() bool { return !slices.ContainsFunc(all, procAlive) }) {
		for _, pid := range all {
			if procAlive(pid) {
				t.Errorf("DEL plugin %d of the killed berthd still runs after the restart", pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	remove(id)
	if l := leases(); len(l) > 0 {
		t.Errorf("leases left: %v (last pod had %s)", l, ip)
	}
	assertBridgeEmpty(t, d)

	// berthd killed during a hanging ADD (after the bridge took a lease):
	// the restart kills the plugin and removes the half-made pod, its
	// lease and veth; the next RunPodSandbox works.
	setMode("add-hang")
	before := len(hangPIDs())
	go func() {
		_, err := kubelet.RunPodSandbox(context.Background(), &runtimeapi.RunPodSandboxRequest{Config: d.PodConfig(t, "addkill")})
		errc <- err
	}()
	if !waitUntil(10*time.Second, func() bool { return len(hangPIDs()) > before }) {
		t.Fatal("the hanging ADD never ran")
	}
	all = hangPIDs()
	d.Kill9(t)
	if err := <-errc; err == nil {
		t.Errorf("RunPodSandbox cut by the kill succeeded")
	}
	if !slices.ContainsFunc(all, procAlive) {
		t.Errorf("the hanging ADD ended with berthd's kill: the restart is not tested")
	}
	setMode("")
	d.Restart(t)
	if !waitUntil(10*time.Second, func() bool { return !slices.ContainsFunc(all, procAlive) }) {
		t.Errorf("ADD plugin of the killed berthd still runs after the restart")
	}
	assertNoPods(t, d)
	if l := leases(); len(l) > 0 {
		t.Errorf("leases left by the killed ADD: %v", l)
	}
	waitUntil(5*time.Second, func() bool {
		ports, _ := os.ReadDir(filepath.Join("/sys/class/net", d.Bridge, "brif"))
		return len(ports) == 0
	})
	assertBridgeEmpty(t, d)
	// The node still runs pods.
	remove(d.RunPod(t, d.PodConfig(t, "after")))
}
