package kubelet

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
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

// kernelTunables are the sysctls kubelet sets at start (unless
// protectKernelDefaults, which makes it refuse to start when they differ):
// saved before and restored after every kubelet, so that the host keeps its
// own values.
var kernelTunables = []string{"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic",
	"kernel/panic_on_oops", "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes"}

// containerLogLinks is kubelet's fixed legacy log symlink directory; it is
// not derived from --root-dir or podLogsDir.
const containerLogLinks = "/var/log/containers"

// devicePlugins is where kubelet's device manager puts its socket, also
// whatever --root-dir says. kubelet empties it at start, so the tests must
// not run beside a real kubelet.
const (
	hostKubeletDir = "/var/lib/kubelet"
	devicePlugins  = hostKubeletDir + "/device-plugins"
)

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
		Config:  fmt.Sprintf("[images]\nregistry_config_dir = %q\n", mirrors),
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

// unmountSelfBind unmounts dir's own mounts (not those below it), topmost
// first.
func unmountSelfBind(dir string) error {
	for {
		b, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			return err
		}
		mounted := false
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
				mounted = true
			}
		}
		if !mounted {
			return nil
		}
		if err := syscall.Unmount(dir, 0); err != nil {
			return err
		}
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

// removeLogLinks removes kubelet's /var/log/containers symlinks to this
// test's logs, which kubelet's garbage collector would have removed with the
// containers had teardown waited for it (TestStaticPodRunsAndIsRemoved does),
// and the directory too when kubelet created it.
func (e *env) removeLogLinks(created bool) {
	for _, l := range e.logLinks() {
		_ = os.Remove(l)
	}
	if created {
		_ = syscall.Rmdir(containerLogLinks) // only when empty
	}
}

// logLinks returns kubelet's /var/log/containers symlinks to this test's logs.
func (e *env) logLinks() []string {
	links, _ := filepath.Glob(filepath.Join(containerLogLinks, "*_"+namespace+"_*.log"))
	var ours []string
	for _, l := range links {
		if target, err := os.Readlink(l); err == nil && strings.HasPrefix(target, e.d.Dir+"/") {
			ours = append(ours, l)
		}
	}
	return ours
}

func saveTunables(t *testing.T) map[string]string {
	t.Helper()
	saved := map[string]string{}
	for _, k := range kernelTunables {
		b, err := os.ReadFile(filepath.Join("/proc/sys", k))
		if err != nil {
			t.Fatal(err)
		}
		saved[k] = strings.TrimSpace(string(b))
	}
	return saved
}

func restoreTunables(t *testing.T, saved map[string]string) {
	for k, v := range saved {
		p := filepath.Join("/proc/sys", k)
		if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == v {
			continue
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Errorf("restore sysctl %s=%s: %v", k, v, err)
		}
	}
}

// cgroupHierarchies are the mounted cgroup hierarchies (v1 controllers, the
// named systemd one and the hybrid unified one).
func cgroupHierarchies() []string {
	entries, _ := os.ReadDir("/sys/fs/cgroup")
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, filepath.Join("/sys/fs/cgroup", e.Name()))
		}
	}
	return out
}

// makeCgroupRoot creates kubelet's --cgroup-root (the daemon's cgroup
// parent) in every hierarchy: kubelet refuses a root that does not exist.
// The cpuset one gets its parent's CPUs and memory nodes, without which no
// task may join a child.
func makeCgroupRoot(root string) error {
	for _, h := range cgroupHierarchies() {
		dir := filepath.Join(h, root)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if filepath.Base(h) == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				b, err := os.ReadFile(filepath.Join(h, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
					return fmt.Errorf("%s: %w", filepath.Join(dir, f), err)
				}
			}
		}
	}
	return nil
}

// removeKubeletCgroups removes what kubelet made below root (its QoS and pod
// cgroups, kubepods/…), deepest first, once it is stopped. A cgroup that
// still has processes is a leak.
func removeKubeletCgroups(root string) []string {
	var leaks []string
	for _, h := range cgroupHierarchies() {
		top := filepath.Join(h, root, "kubepods")
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, de os.DirEntry, err error) error {
			if err == nil && de.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, dir := range dirs {
			if err := syscall.Rmdir(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
				b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
				leaks = append(leaks, fmt.Sprintf("cgroup %s not removable (%v); processes %q", dir, err, strings.Fields(string(b))))
			}
		}
	}
	return leaks
}

// Kubelet is one kubelet process, standalone, on loopback.
type Kubelet struct {
	bin string
	// Dir holds its root dir, certificates, config, manifests and log.
	Dir       string
	Manifests string
	RootDir   string
	LogPath   string
	// PodLogsDir is kubelet's podLogsDir (berthd's LogDir).
	PodLogsDir string
	// Port is the authenticated (anonymous, AlwaysAllow) HTTPS port with
	// /run and /exec; ReadOnlyPort serves /pods and /stats.
	Port, ReadOnlyPort, HealthzPort int

	args   []string
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newKubelet writes kubelet's configuration: everything inside d.Dir (so
// the framework's mount and process checks cover it), endpoints on
// 127.0.0.1, no kubeconfig.
func newKubelet(t *testing.T, bin string, d *framework.Daemon, extra string) *Kubelet {
	t.Helper()
	dir := filepath.Join(d.Dir, "kubelet")
	k := &Kubelet{bin: bin, Dir: dir, Manifests: filepath.Join(dir, "manifests"), RootDir: filepath.Join(dir, "root"), LogPath: filepath.Join(dir, "kubelet.log"),
		PodLogsDir: d.LogDir, Port: freePort(t), ReadOnlyPort: freePort(t), HealthzPort: freePort(t)}
	for _, p := range []string{k.Manifests, k.RootDir, filepath.Join(dir, "pki")} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := makeCgroupRoot(d.CgroupParent); err != nil {
		t.Fatalf("create kubelet's cgroup root: %v", err)
	}
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\nsearch berth.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: %s
fileCheckFrequency: 1s
syncFrequency: 10s
podLogsDir: %s
containerRuntimeEndpoint: unix://%s
imageServiceEndpoint: unix://%s
address: 127.0.0.1
port: %d
readOnlyPort: %d
healthzBindAddress: 127.0.0.1
healthzPort: %d
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
cgroupDriver: cgroupfs
cgroupRoot: %s
cgroupsPerQOS: true
failCgroupV1: false
failSwapOn: false
makeIPTablesUtilChains: false
resolvConf: %s
registerNode: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%%"
  nodefs.inodesFree: "1%%"
  imagefs.available: "1%%"
crashLoopBackOff:
  maxContainerRestartPeriod: 2s
%s`, k.Manifests, k.PodLogsDir, d.Socket, d.Socket, k.Port, k.ReadOnlyPort, k.HealthzPort, d.CgroupParent, resolv, extra)
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	k.args = []string{
		"--config", cfgPath,
		"--root-dir", k.RootDir,
		"--cert-dir", filepath.Join(dir, "pki"),
		"--hostname-override", nodeName,
		"--v", "2",
	}
	return k
}

// Start runs kubelet and waits for its healthz.
func (k *Kubelet) Start(t *testing.T) {
	t.Helper()
	k.mu.Lock()
	logf, err := os.OpenFile(k.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		k.mu.Unlock()
		t.Fatal(err)
	}
	fmt.Fprintf(logf, "=== kubelet test: starting %s %s\n", k.bin, strings.Join(k.args, " "))
	cmd := exec.Command(k.bin, k.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// No kubeconfig may come from the environment either.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + k.Dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	logf.Close()
	if err != nil {
		k.mu.Unlock()
		t.Fatalf("start kubelet: %v", err)
	}
	k.cmd = cmd
	exited := make(chan struct{})
	k.exited = exited
	go func() { _ = cmd.Wait(); close(exited) }()
	k.mu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-exited:
			t.Fatalf("kubelet exited during start\n%s", k.logTail(16<<10))
		default:
		}
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", k.HealthzPort))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(b) == "ok" {
				k.checkStandaloneOnLoopback(t, cmd.Process.Pid)
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubelet not healthy within 60s (%v)\n%s", err, k.logTail(16<<10))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkStandaloneOnLoopback fails t unless kubelet says it runs without an
// API server and every TCP socket it listens on is on 127.0.0.1.
func (k *Kubelet) checkStandaloneOnLoopback(t *testing.T, pid int) {
	t.Helper()
	if b, err := os.ReadFile(k.LogPath); err != nil || !strings.Contains(string(b), "Kubelet is running in standalone mode") {
		t.Errorf("kubelet's log does not say it runs standalone (%v)", err)
	}
	inodes := map[string]bool{}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	listening := 0
	for _, table := range []string{"tcp", "tcp6"} {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			// local_address st … inode; st 0A is LISTEN.
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] {
				continue
			}
			listening++
			if addr := strings.Split(f[1], ":")[0]; addr != "0100007F" {
				t.Errorf("kubelet listens on %s %s, not on 127.0.0.1", table, f[1])
			}
		}
	}
	if listening < 3 {
		t.Errorf("kubelet listens on %d TCP sockets; want its port, read-only port and healthz port", listening)
	}
}

// Running reports whether the kubelet process is alive.
func (k *Kubelet) Running() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cmd == nil {
		return false
	}
	select {
	case <-k.exited:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM to kubelet's PID and waits; SIGKILL after 30 s.
// Kubelet leaves the pods running, as on a real node.
func (k *Kubelet) Stop(t *testing.T) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cmd == nil {
		return
	}
	_ = k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.exited:
	case <-time.After(30 * time.Second):
		t.Errorf("kubelet (pid %d) did not exit within 30s of SIGTERM; killing it", k.cmd.Process.Pid)
		_ = k.cmd.Process.Kill()
		<-k.exited
	}
	k.cmd = nil
}

// errorLines returns kubelet's distinct error messages (klog "E" lines, by
// their quoted message), for the test log.
func (k *Kubelet) errorLines() []string {
	b, err := os.ReadFile(k.LogPath)
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "E") {
			continue
		}
		i := strings.Index(line, "] ")
		if i < 0 {
			continue
		}
		msg := line[i+2:]
		key := msg
		if j := strings.Index(msg[min(1, len(msg)):], "\""); j >= 0 {
			key = msg[:j+1]
		}
		if !seen[key] {
			seen[key] = true
			if len(msg) > 400 {
				msg = msg[:400] + "…"
			}
			out = append(out, "  "+msg)
		}
	}
	return out
}

// logTail returns the end of kubelet's log.
func (k *Kubelet) logTail(max int) string {
	b, err := os.ReadFile(k.LogPath)
	if err != nil {
		return fmt.Sprintf("(no kubelet log: %v)", err)
	}
	if len(b) > max {
		b = append([]byte("...\n"), b[len(b)-max:]...)
	}
	return fmt.Sprintf("--- kubelet log %s ---\n%s--- end of kubelet log ---", k.LogPath, b)
}

// get fetches path from the read-only port.
func (k *Kubelet) get(path string) ([]byte, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", k.ReadOnlyPort, path))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return b, nil
}

// secure calls the authenticated port (kubelet's self-signed certificate,
// on loopback).
func (k *Kubelet) secure(method, path string, form url.Values) (int, []byte, error) {
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // kubelet's own self-signed cert on 127.0.0.1
	}}
	req, err := http.NewRequest(method, fmt.Sprintf("https://127.0.0.1:%d%s", k.Port, path), strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// The parts of a v1.Pod the tests read (berth's module does not depend on
// k8s.io/api).
type pod struct {
	Metadata struct {
		Name, Namespace, UID string
	}
	Status podStatus
}

type podStatus struct {
	Phase                 string
	Reason, Message       string
	PodIP                 string `json:"podIP"`
	QOSClass              string `json:"qosClass"`
	Conditions            []struct{ Type, Status string }
	ContainerStatuses     []containerStatus
	InitContainerStatuses []containerStatus
}

type containerStatus struct {
	Name         string
	Ready        bool
	Started      *bool
	RestartCount int32
	ContainerID  string `json:"containerID"`
	ImageID      string `json:"imageID"`
	State        containerState
	LastState    containerState `json:"lastState"`
}

type containerState struct {
	Running *struct {
		StartedAt string `json:"startedAt"`
	}
	Waiting *struct{ Reason, Message string }
	// ExitCode and Reason (Completed, Error, OOMKilled).
	Terminated *struct {
		ExitCode int32 `json:"exitCode"`
		Reason   string
		Message  string
	}
}

// condition reports whether the pod condition typ is True.
func (p *pod) condition(typ string) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == typ {
			return c.Status == "True"
		}
	}
	return false
}

// container returns the status of the (init) container called name.
func (p *pod) container(name string) *containerStatus {
	for _, list := range [][]containerStatus{p.Status.ContainerStatuses, p.Status.InitContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// id is the CRI container id: kubelet's containerID without its
// "<runtime name>://" prefix.
func (c *containerStatus) id() string {
	if i := strings.Index(c.ContainerID, "://"); i >= 0 {
		return c.ContainerID[i+3:]
	}
	return c.ContainerID
}

// pods returns kubelet's pods in namespace, by manifest name (the pod name
// without the -<node> suffix).
func (k *Kubelet) pods() (map[string]*pod, error) {
	b, err := k.get("/pods")
	if err != nil {
		return nil, err
	}
	var list struct{ Items []*pod }
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("decode /pods: %w", err)
	}
	out := map[string]*pod{}
	for _, p := range list.Items {
		if p.Metadata.Namespace == namespace {
			out[strings.TrimSuffix(p.Metadata.Name, "-"+nodeName)] = p
		}
	}
	return out, nil
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
