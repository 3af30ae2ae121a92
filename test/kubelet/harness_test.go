package kubelet

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
	"github.com/berth-project/berth/test/testimage"
)

const (
	// namespace is every static pod's namespace.
	namespace = "kubelet-e2e"
	// nodeName is kubelet's --hostname-override: static pods are named
	// <name>-<nodeName>.
	nodeName = "berth-node"
	// upstream is the registry the pods' images name. berthd mirrors it to
	// the loopback registry, and its server is the loopback registry too, so
	// that no pull ever leaves the machine.
	upstream = "registry.berth.test"
	// busyboxRepo is the busybox test image in the loopback registry.
	busyboxRepo = "e2e/busybox:1"
)

// busyboxImage is the image reference manifests use.
var busyboxImage = upstream + "/" + busyboxRepo

// env is one test's berthd, loopback registry and kubelet.
type env struct {
	t   *testing.T
	d   *framework.Daemon
	reg *framework.Registry
	k   *Kubelet
}

// envOptions changes what newEnv starts.
type envOptions struct {
	// KubeletConfig is YAML appended to the KubeletConfiguration.
	KubeletConfig string
}

// newEnv starts a loopback registry with the busybox image, a berthd that
// mirrors upstream to it, and a kubelet on that berthd. At the end of t the
// manifests are removed, kubelet is given time to stop the pods, it is
// stopped by PID, and the host is checked for leftovers (then the
// framework's leak check runs).
func newEnv(t *testing.T, opts envOptions) *env {
	t.Helper()
	bin := kubeletBinary(t)
	reg := framework.StartRegistry(t, framework.RegistryOptions{})
	img, err := testimage.BusyboxImage()
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, busyboxRepo, img)
	mirrors := filepath.Join(t.TempDir(), "registries.d")
	writeMirrors(t, mirrors, reg)
	d := framework.StartDaemon(t, framework.Options{
		NoImage: true,
		// prepare_ahead: berthd's default, which the e2e framework turns off.
		Config: fmt.Sprintf("[images]\nregistry_config_dir = %q\n\n[network]\nprepare_ahead = true\n", mirrors),
	})
	e := &env{t: t, d: d, reg: reg}
	e.k = newKubelet(t, bin, d, opts.KubeletConfig)
	if c, err := net.Dial("unix", filepath.Join(devicePlugins, "kubelet.sock")); err == nil {
		c.Close()
		t.Skipf("a kubelet already serves %s on this host: its device plugin directory would be emptied", devicePlugins)
	}
	saved := saveTunables(t)
	_, linksDirErr := os.Stat(containerLogLinks)
	_, kubeletDirErr := os.Stat(hostKubeletDir)
	t.Cleanup(func() {
		e.teardown()
		restoreTunables(t, saved)
		e.removeLogLinks(os.IsNotExist(linksDirErr))
		if os.IsNotExist(kubeletDirErr) {
			// Only the device manager's socket and checkpoint are in it.
			if err := os.RemoveAll(hostKubeletDir); err != nil {
				t.Errorf("remove kubelet's %s: %v", hostKubeletDir, err)
			}
		}
	})
	e.k.Start(t)
	return e
}

// writeMirrors points upstream at the loopback registry, as mirror and as
// server.
func writeMirrors(t *testing.T, dir string, reg *framework.Registry) {
	t.Helper()
	p := filepath.Join(dir, upstream, "hosts.toml")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", "http://"+reg.Host, "http://"+reg.Host)
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// teardown deletes every manifest, waits for kubelet to stop the pods'
// containers, stops kubelet, removes what kubelet's garbage collector would
// have removed later (sandboxes, its cgroups) and reports what it could not.
func (e *env) teardown() {
	t := e.t
	if e.k.Running() && e.d.Running() {
		entries, _ := os.ReadDir(e.k.Manifests)
		for _, m := range entries {
			_ = os.Remove(filepath.Join(e.k.Manifests, m.Name()))
		}
		if len(entries) > 0 {
			if err := e.waitNoRunningContainers(90 * time.Second); err != nil {
				t.Errorf("after its manifests were deleted: %v", err)
			}
		}
	}
	e.k.Stop(t)
	// kubelet bind-mounts its root dir on itself (to make it rshared) and
	// leaves that mount when it exits, as on any node.
	if err := unmountSelfBind(e.k.RootDir); err != nil {
		t.Errorf("unmount kubelet's root dir: %v", err)
	}
	if e.d.Running() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		pods, err := e.d.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
		if err == nil {
			for _, p := range pods.Items {
				_, _ = e.d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id})
				_, _ = e.d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id})
			}
		}
	}
	for _, leak := range removeKubeletCgroups(e.d.CgroupParent) {
		t.Error(leak)
	}
	if t.Failed() {
		t.Log(e.k.logTail(48 << 10))
	}
	if errs := e.k.errorLines(); len(errs) > 0 {
		t.Logf("kubelet logged %d distinct errors (informational):\n%s", len(errs), strings.Join(errs, "\n"))
	}
}

// waitNoRunningContainers waits until berthd lists no running container.
func (e *env) waitNoRunningContainers(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := e.d.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{
			Filter: &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}})
		cancel()
		if err == nil && len(resp.Containers) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return err
			}
			var names []string
			for _, c := range resp.Containers {
				names = append(names, c.GetMetadata().GetName())
			}
			return fmt.Errorf("containers still running after %v: %v", timeout, names)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// apply writes a static pod manifest (atomically: kubelet ignores dot files).
func (e *env) apply(name, manifest string) {
	e.t.Helper()
	tmp := filepath.Join(e.k.Manifests, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(manifest), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(e.k.Manifests, name+".yaml")); err != nil {
		e.t.Fatal(err)
	}
}

// deletePod removes name's manifest.
func (e *env) deletePod(name string) {
	e.t.Helper()
	if err := os.Remove(filepath.Join(e.k.Manifests, name+".yaml")); err != nil {
		e.t.Fatal(err)
	}
}

// podYAML is a static pod manifest: name in the test namespace, a short
// grace period unless spec sets one, and spec (indented two spaces, below
// "spec:"). {{image}} in spec becomes the busybox image.
func podYAML(name, spec string) string {
	spec = strings.ReplaceAll(spec, "{{image}}", busyboxImage)
	if !strings.Contains(spec, "terminationGracePeriodSeconds") {
		spec = "  terminationGracePeriodSeconds: 2\n" + spec
	}
	return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n%s", name, namespace, spec)
}

// waitPod polls kubelet's /pods until ok(pod) holds for name, failing the
// test with the last status after timeout.
func (e *env) waitPod(name string, timeout time.Duration, what string, ok func(p *pod) bool) *pod {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	var last *pod
	var lastErr error
	for {
		pods, err := e.k.pods()
		if err == nil {
			if p := pods[name]; p != nil {
				last = p
				if ok(p) {
					return p
				}
			}
		}
		lastErr = err
		if time.Now().After(deadline) {
			st, _ := json.MarshalIndent(last, "", "  ")
			e.t.Fatalf("pod %s: not %s within %v (last error %v); last status:\n%s", name, what, timeout, lastErr, st)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// running waits until name's phase is Running and every container ready.
func (e *env) running(name string) *pod {
	e.t.Helper()
	return e.waitPod(name, 90*time.Second, "Running and Ready", func(p *pod) bool {
		return p.Status.Phase == "Running" && p.condition("Ready")
	})
}

// sandbox returns berthd's sandbox for the static pod name (ready or not;
// the newest), or nil.
func (e *env) sandbox(name string) *runtimeapi.PodSandbox {
	e.t.Helper()
	resp, err := e.d.Runtime.ListPodSandbox(framework.Ctx(e.t), &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		e.t.Fatal(err)
	}
	var found *runtimeapi.PodSandbox
	for _, s := range resp.Items {
		md := s.GetMetadata()
		if md.GetNamespace() == namespace && md.GetName() == name+"-"+nodeName {
			if found == nil || s.CreatedAt > found.CreatedAt {
				found = s
			}
		}
	}
	return found
}

// containers returns berthd's containers in sandbox podID.
func (e *env) containers(podID string) []*runtimeapi.Container {
	e.t.Helper()
	resp, err := e.d.Runtime.ListContainers(framework.Ctx(e.t), &runtimeapi.ListContainersRequest{
		Filter: &runtimeapi.ContainerFilter{PodSandboxId: podID}})
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.Containers
}

// logFile is where kubelet has berthd write container ctr's log for
// attempt n of pod p.
func (e *env) logFile(p *pod, ctr string, n int) string {
	return filepath.Join(e.k.PodLogsDir, fmt.Sprintf("%s_%s_%s", p.Metadata.Namespace, p.Metadata.Name, p.Metadata.UID), ctr, strconv.Itoa(n)+".log")
}

// eventually polls cond every 300 ms until it returns nil or timeout passes,
// then fails with its last error.
func (e *env) eventually(timeout time.Duration, what string, cond func() error) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
