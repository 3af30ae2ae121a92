package e2e

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// runPodWithHandler runs pod under handler and returns its id.
func runPodWithHandler(t *testing.T, d *framework.Daemon, pod *runtimeapi.PodSandboxConfig, handler string) string {
	t.Helper()
	resp, err := d.Runtime.RunPodSandbox(framework.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: pod, RuntimeHandler: handler})
	if err != nil {
		t.Fatalf("RunPodSandbox(%s, handler %q): %v", pod.GetMetadata().GetName(), handler, err)
	}
	return resp.PodSandboxId
}

func TestRuntimeHandlersReported(t *testing.T) {
	d := framework.Shared(t)
	resp, err := d.Runtime.Status(framework.Ctx(t), &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range resp.RuntimeHandlers {
		names = append(names, h.Name)
	}
	for _, want := range []string{"", "runc", "runsc"} {
		if !slices.Contains(names, want) {
			t.Errorf("Status.runtime_handlers %q lacks %q", names, want)
		}
	}
	for _, h := range resp.RuntimeHandlers {
		if h.Name == "runc" && !h.GetFeatures().GetRecursiveReadOnlyMounts() {
			t.Errorf("runc handler does not report recursive read-only mounts (runc and this kernel support them)")
		}
		// berth's runc (hack/install.sh) has idmapped mounts, and this
		// kernel idmaps tmpfs and the layers' filesystem; gVisor's sandbox
		// is not wired for user namespaces.
		if want := h.Name != "runsc"; h.GetFeatures().GetUserNamespaces() != want {
			t.Errorf("handler %q reports user_namespaces %v, want %v", h.Name, h.GetFeatures().GetUserNamespaces(), want)
		}
	}
	if !resp.GetFeatures().GetMountOptions() {
		t.Errorf("Status.features.mount_options is false; every handler lists its mount options")
	}
}

// TestDebianRuncHandler: the default runc handler runs berth's own runc
// (hack/install.sh), and Debian's runc stays usable as a handler of its
// own, without user namespaces (its 1.1.5 has no idmapped mounts).
func TestDebianRuncHandler(t *testing.T) {
	if _, err := exec.LookPath("/usr/sbin/runc"); err != nil {
		t.Fatal("Debian's runc is missing: run hack/install.sh")
	}
	d := framework.StartDaemon(t, framework.Options{Config: "[runtimes.runc-debian]\npath = \"/usr/sbin/runc\"\n"})
	resp, err := d.Runtime.Status(framework.Ctx(t), &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(resp.Info["config"], framework.Runc()) || framework.Runc() == "runc" {
		t.Errorf("the runc handler's path is not berth's runc %s: %s", framework.Runc(), resp.Info["config"])
	}
	for _, h := range resp.RuntimeHandlers {
		if h.Name == "runc-debian" && h.GetFeatures().GetUserNamespaces() {
			t.Errorf("Debian's runc 1.1.5 reports user namespaces")
		}
	}
	pod := d.PodConfig(t, "debian-runc")
	podID := runPodWithHandler(t, d, pod, "runc-debian")
	st, out := runToExit(t, d, podID, pod, framework.Sh("hello", "echo hello from debian runc"))
	if st.ExitCode != 0 || !strings.Contains(out, "hello from debian runc") {
		t.Errorf("container under runc-debian: exit %d, output %q", st.ExitCode, out)
	}
}

func TestUnknownRuntimeHandler(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "nohandler")
	_, err := d.Runtime.RunPodSandbox(framework.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: pod, RuntimeHandler: "kata-nope"})
	wantCode(t, "RunPodSandbox with an unknown handler", err, codes.InvalidArgument)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "kata-nope") || !strings.Contains(msg, "runc") {
		t.Errorf("error %q should name the handler and the known ones", msg)
	}
	if ids := podIDs(t, d, nil); len(ids) != 0 {
		t.Errorf("pods listed after a refused RunPodSandbox: %v", ids)
	}
}

// TestRunscPod runs a pod under gVisor: the kernel its containers see is
// gVisor's, not the host's. runsc must be installed (hack/install.sh
// --with-runsc): a missing runsc fails the test rather than skipping it.
func TestRunscPod(t *testing.T) {
	if _, err := exec.LookPath("runsc"); err != nil {
		t.Fatal("runsc is not on PATH: run hack/install.sh --with-runsc")
	}
	d := framework.Shared(t)
	pod := d.PodConfig(t, "gvisor")
	podID := runPodWithHandler(t, d, pod, "runsc")

	cfg := framework.Sh("kernel", "uname -r; dmesg | head -1; echo done")
	id := d.RunContainer(t, podID, pod, cfg)
	st := d.WaitForState(t, id, runtimeapi.ContainerState_CONTAINER_EXITED, 60*time.Second)
	out := strings.Join(framework.LogTexts(t, framework.LogPath(pod, cfg)), "\n")
	if st.ExitCode != 0 {
		t.Fatalf("exit code %d, output:\n%s", st.ExitCode, out)
	}
	if !strings.Contains(out, "gVisor") && !strings.Contains(out, "gvisor") {
		t.Errorf("container output does not show gVisor's kernel:\n%s", out)
	}
	host, _ := exec.Command("uname", "-r").Output()
	if strings.Contains(out, strings.TrimSpace(string(host))) {
		t.Errorf("container under runsc reports the host kernel %s:\n%s", host, out)
	}
}

// TestRunscSharedPIDAndStop runs two containers of one gVisor pod that
// share a PID namespace (berth-pause is the sandbox's first process), and
// stops a running one.
func TestRunscSharedPIDAndStop(t *testing.T) {
	if _, err := exec.LookPath("runsc"); err != nil {
		t.Fatal("runsc is not on PATH: run hack/install.sh --with-runsc")
	}
	d := framework.Shared(t)
	pod := d.PodConfig(t, "gvisorpid")
	pod.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	podID := runPodWithHandler(t, d, pod, "runsc")
	sleeper := framework.Sh("sleeper", "exec sleep 4242")
	sleeper.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	sleepID := d.RunContainer(t, podID, pod, sleeper)
	looker := framework.Sh("looker", "sleep 0.5; ps")
	looker.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	id := d.RunContainer(t, podID, pod, looker)
	st := d.WaitForState(t, id, runtimeapi.ContainerState_CONTAINER_EXITED, 60*time.Second)
	out := strings.Join(framework.LogTexts(t, framework.LogPath(pod, looker)), "\n")
	// gVisor gives the pod's containers one PID namespace of their own,
	// below the sandbox's (where the pause process is).
	if st.ExitCode != 0 || !strings.Contains(out, "sleep 4242") {
		t.Errorf("exit %d; ps in a shared-PID gVisor pod should show the sleeper:\n%s", st.ExitCode, out)
	}
	if _, err := d.Runtime.StopContainer(framework.Ctx(t), &runtimeapi.StopContainerRequest{ContainerId: sleepID, Timeout: 5}); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	if st := d.ContainerStatus(t, sleepID); st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 143 {
		t.Errorf("stopped gVisor container: state %v exit %d, want exited by SIGTERM (143)", st.State, st.ExitCode)
	}
}
