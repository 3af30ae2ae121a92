package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// cdiSpec maps a harmless vendor device to /dev/null, with an env var and
// a read-only mount (%s: the mount's host dir).
const cdiSpec = `cdiVersion: "0.6.0"
kind: example.com/test
devices:
- name: nulldev
  containerEdits:
    env:
    - BERTH_CDI_TEST=nulldev
    deviceNodes:
    - path: /dev/berth-null
      hostPath: /dev/null
    mounts:
    - hostPath: %s
      containerPath: /cdi-mnt
      options: [bind, ro]
`

// nriDaemon is a berthd with NRI on (its own socket), the test plugin
// pre-registered from a plugin dir, and a CDI spec dir holding cdiSpec.
type nriDaemon struct {
	*framework.Daemon
	events string // the plugin's event log
}

func startNRIDaemon(t *testing.T) *nriDaemon {
	dir := t.TempDir()
	plugins, conf, cdiDir := filepath.Join(dir, "plugins"), filepath.Join(dir, "conf"), filepath.Join(dir, "cdi")
	nriMount, cdiMount := filepath.Join(dir, "nri-mount"), filepath.Join(dir, "cdi-mount")
	for _, d := range []string{plugins, conf, cdiDir, nriMount, cdiMount} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(nriMount, "hello"), "from-nri-mount\n")
	write(filepath.Join(cdiMount, "hello"), "from-cdi-mount\n")
	write(filepath.Join(cdiDir, "example.yaml"), fmt.Sprintf(cdiSpec, cdiMount))
	bin := framework.NRIPluginBinary(t, "10-berthtest")
	if err := os.Rename(bin, filepath.Join(plugins, "10-berthtest")); err != nil {
		t.Fatal(err)
	}
	events := filepath.Join(dir, "events")
	write(filepath.Join(conf, "10-berthtest.conf"), fmt.Sprintf("events: %s\nmount-src: %s\nmount-dst: /nri-test\n", events, nriMount))
	d := framework.StartDaemon(t, framework.Options{Config: fmt.Sprintf(`[nri]
enable = true
socket_path = %q
plugin_path = %q
plugin_config_path = %q
plugin_request_timeout = "2s"

[cdi]
spec_dirs = [%q]
`, filepath.Join(dir, "nri.sock"), plugins, conf, cdiDir)})
	return &nriDaemon{Daemon: d, events: events}
}

// podEvents are the events the plugin saw for pod (by name), in order.
func (d *nriDaemon) podEvents(t *testing.T, pod string) []string {
	t.Helper()
	b, err := os.ReadFile(d.events)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		ev, subject, _ := strings.Cut(line, " ")
		if parts := strings.Split(subject, "/"); len(parts) >= 2 && parts[1] == pod {
			out = append(out, ev)
		}
	}
	return out
}

// waitEvents waits until pod's events are want (exit events arrive
// asynchronously).
func (d *nriDaemon) waitEvents(t *testing.T, pod string, want []string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := d.podEvents(t, pod)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("NRI events of pod %s:\n got %v\nwant %v", pod, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestNRIAndCDI runs a pre-registered NRI plugin and a CDI spec against a
// real berthd: adjustments and devices seen from inside the container,
// every lifecycle event in order, plugin errors failing calls cleanly, a
// hanging plugin cut off, unknown devices refused. The hang goes last: it
// costs the plugin its connection.
func TestNRIAndCDI(t *testing.T) {
	d := startNRIDaemon(t)
	ctx := framework.Ctx(t)

	t.Run("AdjustmentsDevicesAndEventOrder", func(t *testing.T) {
		pod := d.PodConfig(t, "nri-adjust")
		podID := d.RunPod(t, pod)
		cfg := framework.Sh("c", `echo "env=$BERTH_NRI_TEST"; echo "nri=$(cat /nri-test/hello)"; `+
			`echo "cdienv=$BERTH_CDI_TEST"; echo "cdi=$(cat /cdi-mnt/hello)"; ls -l /dev/berth-null; echo done; sleep 1000`)
		cfg.CDIDevices = []*runtimeapi.CDIDevice{{Name: "example.com/test=nulldev"}}
		id := d.RunContainer(t, podID, pod, cfg)
		lines := framework.WaitForLog(t, framework.LogPath(pod, cfg), "done", 20*time.Second)
		var texts []string
		for _, l := range lines {
			texts = append(texts, l.Text)
		}
		out := strings.Join(texts, "\n")
		for _, want := range []string{"env=adjusted", "nri=from-nri-mount", "cdienv=nulldev", "cdi=from-cdi-mount"} {
			if !strings.Contains(out, want) {
				t.Errorf("container output lacks %q:\n%s", want, out)
			}
		}
		// /dev/null's numbers: character device 1, 3.
		if !strings.Contains(out, "1,   3") && !strings.Contains(out, "1, 3") {
			t.Errorf("/dev/berth-null is not /dev/null in the container:\n%s", out)
		}
		// Execs get the adjusted environment too.
		r, err := d.Runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", "echo $BERTH_NRI_TEST"}, Timeout: 10})
		if err != nil || strings.TrimSpace(string(r.GetStdout())) != "adjusted" {
			t.Errorf("exec env: %q %v", r.GetStdout(), err)
		}

		if _, err := d.Runtime.UpdateContainerResources(ctx, &runtimeapi.UpdateContainerResourcesRequest{
			ContainerId: id, Linux: &runtimeapi.LinuxContainerResources{CpuShares: 4, CpuPeriod: 100000},
		}); err != nil {
			t.Fatalf("UpdateContainerResources: %v", err)
		}
		const podMem = 256 << 20
		if _, err := d.Runtime.UpdatePodSandboxResources(ctx, &runtimeapi.UpdatePodSandboxResourcesRequest{
			PodSandboxId: podID,
			Overhead:     &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20},
			Resources:    &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: podMem - 64<<20, CpuShares: 2},
		}); err != nil {
			t.Fatalf("UpdatePodSandboxResources: %v", err)
		}
		if got := podMemoryLimit(t, pod.GetLinux().GetCgroupParent()); got != podMem {
			t.Errorf("pod cgroup memory limit %d, want %d (overhead + resources)", got, podMem)
		}

		if _, err := d.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 0}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
			t.Fatal(err)
		}
		d.waitEvents(t, "nri-adjust", []string{
			"RunPodSandbox", "CreateContainer", "PostCreateContainer", "StartContainer", "PostStartContainer",
			"UpdateContainer", "PostUpdateContainer", "UpdatePodSandbox",
			"StopContainer", "RemoveContainer", "StopPodSandbox", "RemovePodSandbox",
		})
	})

	t.Run("ExitReachesPlugins", func(t *testing.T) {
		pod := d.PodConfig(t, "nri-exit")
		podID := d.RunPod(t, pod)
		id := d.RunContainer(t, podID, pod, framework.Sh("c", "exit 3"))
		d.WaitForState(t, id, runtimeapi.ContainerState_CONTAINER_EXITED, 20*time.Second)
		d.waitEvents(t, "nri-exit", []string{"RunPodSandbox", "CreateContainer", "PostCreateContainer", "StartContainer", "PostStartContainer", "StopContainer"})
	})

	t.Run("PluginErrorFailsCreateCleanly", func(t *testing.T) {
		pod := d.PodConfig(t, "nri-fail")
		podID := d.RunPod(t, pod)
		cfg := framework.Sh("c", "sleep 1000")
		cfg.Annotations["berth.test/nri-fail"] = "CreateContainer"
		framework.MakeLogDir(t, pod, cfg)
		bundles := func() []string {
			b, _ := filepath.Glob(filepath.Join(d.StateDir, "containers", "*"))
			return b
		}
		before := bundles()
		_, err := d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: pod})
		if err == nil || !strings.Contains(err.Error(), "berth test plugin fails CreateContainer") {
			t.Fatalf("CreateContainer with a failing plugin: %v, want the plugin's error", err)
		}
		if ids := containerIDs(t, d.Daemon, &runtimeapi.ContainerFilter{PodSandboxId: podID}); len(ids) != 0 {
			t.Errorf("a failed create left containers %v", ids)
		}
		if after := bundles(); !slices.Equal(after, before) {
			t.Errorf("a failed create left bundles: %v, before %v", after, before)
		}
		// Plugins that saw the container are told it is gone.
		d.waitEvents(t, "nri-fail", []string{"RunPodSandbox", "CreateContainer", "StopContainer", "RemoveContainer"})
		// The same name can be created once the plugin lets it.
		delete(cfg.Annotations, "berth.test/nri-fail")
		d.CreateContainer(t, podID, pod, cfg)
	})

	t.Run("PluginErrorFailsRunPodSandboxCleanly", func(t *testing.T) {
		pod := d.PodConfig(t, "nri-fail-pod")
		pod.Annotations["berth.test/nri-fail"] = "RunPodSandbox"
		_, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
		if err == nil || !strings.Contains(err.Error(), "berth test plugin fails RunPodSandbox") {
			t.Fatalf("RunPodSandbox with a failing plugin: %v, want the plugin's error", err)
		}
		pods, err := d.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.GetItems() {
			if p.GetMetadata().GetName() == "nri-fail-pod" {
				t.Errorf("a failed RunPodSandbox left pod %s", p.GetId())
			}
		}
		d.waitEvents(t, "nri-fail-pod", []string{"RunPodSandbox", "StopPodSandbox", "RemovePodSandbox"})
	})

	t.Run("UnknownCDIDeviceRefused", func(t *testing.T) {
		pod := d.PodConfig(t, "cdi-unknown")
		podID := d.RunPod(t, pod)
		cfg := framework.Sh("c", "sleep 1000")
		cfg.CDIDevices = []*runtimeapi.CDIDevice{{Name: "example.com/test=nosuch"}}
		framework.MakeLogDir(t, pod, cfg)
		_, err := d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: pod})
		wantCode(t, "CreateContainer with an unknown CDI device", err, codes.FailedPrecondition)
		if !strings.Contains(status.Convert(err).Message(), "example.com/test=nosuch") {
			t.Errorf("error does not name the device: %v", err)
		}
		if ids := containerIDs(t, d.Daemon, &runtimeapi.ContainerFilter{PodSandboxId: podID}); len(ids) != 0 {
			t.Errorf("a refused create left containers %v", ids)
		}
		// The annotation path of device plugins is resolved the same way.
		cfg.CDIDevices = nil
		cfg.Annotations["cdi.k8s.io/test_0"] = "example.com/test=nosuch"
		_, err = d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: pod})
		wantCode(t, "CreateContainer with an unknown CDI device in an annotation", err, codes.FailedPrecondition)
	})

	t.Run("HangingPluginCutOff", func(t *testing.T) {
		pod := d.PodConfig(t, "nri-hang")
		podID := d.RunPod(t, pod)
		cfg := framework.Sh("c", "sleep 1000")
		cfg.Annotations["berth.test/nri-hang"] = "StartContainer"
		id := d.CreateContainer(t, podID, pod, cfg)
		start := time.Now()
		if _, err := d.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
			t.Fatalf("StartContainer with a hanging plugin: %v (the plugin should be cut off and the start go on)", err)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("StartContainer took %v with a 2s plugin request timeout", took)
		}
		if st := d.ContainerStatus(t, id); st.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("container %v after the start, want running", st.GetState())
		}
	})
}

// podMemoryLimit reads the memory limit of the pod cgroup at parent.
func podMemoryLimit(t *testing.T, parent string) int64 {
	t.Helper()
	p := filepath.Join("/sys/fs/cgroup/memory", parent, "memory.limit_in_bytes")
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		p = filepath.Join("/sys/fs/cgroup", parent, "memory.max")
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return n
}
