package framework

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/testimage"
)

// Namespace is the Kubernetes namespace of every pod built by PodConfig.
const Namespace = "e2e"

// DNS values PodConfig sends, for tests that read resolv.conf.
var (
	DNSServers  = []string{"10.96.0.10", "10.96.0.11"}
	DNSSearches = []string{"e2e.svc.cluster.local", "svc.cluster.local"}
	DNSOptions  = []string{"ndots:5", "timeout:2"}
)

// Kubelet's default masked and read-only paths (k8s.io/kubernetes
// pkg/securitycontext), which it sends in every container's security context.
var (
	defaultMaskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
	defaultReadonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// PodConfig returns a sandbox config shaped like kubelet's for a BestEffort
// pod called name: fresh uid, attempt 0, log directory
// <LogDir>/<ns>_<name>_<uid> (created, as kubelet does), hostname name, DNS
// config, cgroup parent <CgroupParent>/pod<uid>, and kubelet's labels.
func (d *Daemon) PodConfig(t testing.TB, name string) *runtimeapi.PodSandboxConfig {
	t.Helper()
	uid := uuid.NewString()
	logDir := filepath.Join(d.LogDir, Namespace+"_"+name+"_"+uid)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Uid: uid, Namespace: Namespace, Attempt: 0},
		Hostname:     name,
		LogDirectory: logDir,
		DnsConfig:    &runtimeapi.DNSConfig{Servers: DNSServers, Searches: DNSSearches, Options: DNSOptions},
		Labels: map[string]string{
			"io.kubernetes.pod.name":      name,
			"io.kubernetes.pod.namespace": Namespace,
			"io.kubernetes.pod.uid":       uid,
		},
		Annotations: map[string]string{
			"kubernetes.io/config.source": "file",
			"kubernetes.io/config.seen":   time.Now().Format(time.RFC3339Nano),
		},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: d.CgroupParent + "/pod" + uid,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{
					Network: runtimeapi.NamespaceMode_POD,
					Pid:     runtimeapi.NamespaceMode_CONTAINER,
					Ipc:     runtimeapi.NamespaceMode_POD,
				},
				Seccomp: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined},
			},
			Resources: &runtimeapi.LinuxContainerResources{CpuShares: 2, CpuPeriod: 100000},
		},
	}
}

// ContainerConfig returns a container config shaped like kubelet's for a
// BestEffort container called name running the busybox image with command
// cmd (empty keeps the image's): log_path <name>/0.log, oom_score_adj 1000,
// kubelet's masked and read-only paths, and kubelet's labels.
func ContainerConfig(name string, cmd ...string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name, Attempt: 0},
		Image:    &runtimeapi.ImageSpec{Image: testimage.BusyboxRef, UserSpecifiedImage: testimage.BusyboxRef},
		Command:  cmd,
		LogPath:  name + "/0.log",
		Envs:     []*runtimeapi.KeyValue{{Key: "KUBERNETES_SERVICE_HOST", Value: []byte("10.96.0.1")}},
		Labels: map[string]string{
			"io.kubernetes.container.name": name,
		},
		Annotations: map[string]string{
			"io.kubernetes.container.restartCount":           "0",
			"io.kubernetes.container.terminationMessagePath": "/dev/termination-log",
		},
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources: &runtimeapi.LinuxContainerResources{CpuShares: 2, CpuPeriod: 100000, OomScoreAdj: 1000},
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{
					Network: runtimeapi.NamespaceMode_POD,
					Pid:     runtimeapi.NamespaceMode_CONTAINER,
					Ipc:     runtimeapi.NamespaceMode_POD,
				},
				MaskedPaths:   defaultMaskedPaths,
				ReadonlyPaths: defaultReadonlyPaths,
				Seccomp:       &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined},
			},
		},
	}
}

// Sh is ContainerConfig running `sh -c script`.
func Sh(name, script string) *runtimeapi.ContainerConfig {
	return ContainerConfig(name, "sh", "-c", script)
}

// RunPod runs a pod from cfg and returns its id.
func (d *Daemon) RunPod(t testing.TB, cfg *runtimeapi.PodSandboxConfig) string {
	t.Helper()
	resp, err := d.Runtime.RunPodSandbox(Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("RunPodSandbox(%s): %v", cfg.GetMetadata().GetName(), err)
	}
	return resp.PodSandboxId
}

// CreateContainer creates cfg in pod (creating its log directory first, as
// kubelet does) and returns the container id.
func (d *Daemon) CreateContainer(t testing.TB, podID string, pod *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	t.Helper()
	MakeLogDir(t, pod, cfg)
	resp, err := d.Runtime.CreateContainer(Ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: pod})
	if err != nil {
		t.Fatalf("CreateContainer(%s): %v", cfg.GetMetadata().GetName(), err)
	}
	return resp.ContainerId
}

// MakeLogDir creates the directory of cfg's log file, as kubelet does before
// CreateContainer. Log paths that leave the pod's log directory are skipped.
func MakeLogDir(t testing.TB, pod *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) {
	t.Helper()
	if pod.GetLogDirectory() == "" || cfg.GetLogPath() == "" || strings.Contains(cfg.LogPath, "..") {
		return
	}
	if err := os.MkdirAll(filepath.Dir(filepath.Join(pod.LogDirectory, cfg.LogPath)), 0o755); err != nil {
		t.Fatal(err)
	}
}

// StartContainer starts id.
func (d *Daemon) StartContainer(t testing.TB, id string) {
	t.Helper()
	if _, err := d.Runtime.StartContainer(Ctx(t), &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("StartContainer(%s): %v", id, err)
	}
}

// RunContainer creates and starts cfg in pod and returns its id.
func (d *Daemon) RunContainer(t testing.TB, podID string, pod *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	t.Helper()
	id := d.CreateContainer(t, podID, pod, cfg)
	d.StartContainer(t, id)
	return id
}

// ContainerStatus returns id's status.
func (d *Daemon) ContainerStatus(t testing.TB, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	resp, err := d.Runtime.ContainerStatus(Ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStatus(%s): %v", id, err)
	}
	return resp.Status
}

// PodStatus returns pod id's status.
func (d *Daemon) PodStatus(t testing.TB, id string) *runtimeapi.PodSandboxStatus {
	t.Helper()
	resp, err := d.Runtime.PodSandboxStatus(Ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		t.Fatalf("PodSandboxStatus(%s): %v", id, err)
	}
	return resp.Status
}

// WaitForState polls ContainerStatus until id is in state, failing t after
// timeout; it returns the last status.
func (d *Daemon) WaitForState(t testing.TB, id string, state runtimeapi.ContainerState, timeout time.Duration) *runtimeapi.ContainerStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := d.ContainerStatus(t, id)
		if st.State == state {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s: state %v after %v, want %v (status %v)", id, st.State, timeout, state, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// LogPath is where the log of cfg in pod lives on the host.
func LogPath(pod *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	return filepath.Join(pod.LogDirectory, cfg.LogPath)
}
