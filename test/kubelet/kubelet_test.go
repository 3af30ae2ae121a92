package kubelet

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-project/berth/test/e2e/framework"
)

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
	// healthz answers before kubelet opens its other ports: look again
	// for a while until all three listen.
	var listening int
	var bad []string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		listening, bad = tcpListeners(pid)
		if listening >= 3 || len(bad) > 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, b := range bad {
		t.Errorf("kubelet listens on %s, not on 127.0.0.1", b)
	}
	if listening < 3 {
		t.Errorf("kubelet listens on %d TCP sockets; want its port, read-only port and healthz port", listening)
	}
}

// tcpListeners counts the TCP sockets process pid listens on, and lists
// those not on 127.0.0.1.
func tcpListeners(pid int) (listening int, notLoopback []string) {
	inodes := map[string]bool{}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
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
				notLoopback = append(notLoopback, table+" "+f[1])
			}
		}
	}
	return listening, notLoopback
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
