package main

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Shape is how a pod's PID namespace is set up.
type Shape string

const (
	// Kubelet is a pod as kubelet sends it by default: a PID namespace per
	// container.
	Kubelet Shape = "kubelet"
	// SharedPID is the same pod with one PID namespace for the pod, as
	// kubelet sends for shareProcessNamespace: true and as CRI's default
	// (unset) namespace options mean; critest's pods are this shape.
	SharedPID Shape = "shared-pid"
)

const (
	benchNamespace = "berth-bench"
	runLabel       = "berth-bench.run" // on every pod the bench makes, for cleanup
	containerName  = "app"
)

// Kubelet's default masked and read-only paths (k8s.io/kubernetes
// pkg/securitycontext), sent in every container's security context.
var (
	maskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// podFiles are what kubelet prepares on the host before it asks for a pod:
// the pod's log directory and, per container, the /etc/hosts it manages and
// the termination-log file it bind-mounts.
type podFiles struct {
	logDir, hostsFile, termLog string
}

// shaper builds kubelet-shaped configs for one target.
type shaper struct {
	runID        string
	workDir      string // log dirs and kubelet's per-pod files
	cgroupParent string // "" leaves the runtime's default
	systemd      bool
	imageRef     string // image id, as kubelet sends it after pulling
	userImage    string // the reference in the pod spec
}

// pod returns a sandbox config for pod name as kubelet builds it for a
// BestEffort pod with one container port, and prepares its files.
func (s *shaper) pod(name string, shape Shape) (*runtimeapi.PodSandboxConfig, podFiles, error) {
	uid := uuid.NewString()
	podDir := filepath.Join(s.workDir, "pods", uid)
	f := podFiles{
		logDir:    filepath.Join(s.workDir, "logs", benchNamespace+"_"+name+"_"+uid),
		hostsFile: filepath.Join(podDir, "etc-hosts"),
		termLog:   filepath.Join(podDir, "containers", containerName, "termination-log"),
	}
	for _, d := range []string{filepath.Join(f.logDir, containerName), filepath.Dir(f.termLog)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, f, err
		}
	}
	hosts := "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if err := os.WriteFile(f.hostsFile, []byte(hosts), 0o644); err != nil {
		return nil, f, err
	}
	if err := os.WriteFile(f.termLog, nil, 0o666); err != nil {
		return nil, f, err
	}
	pid := runtimeapi.NamespaceMode_CONTAINER
	if shape == SharedPID {
		pid = runtimeapi.NamespaceMode_POD
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Uid: uid, Namespace: benchNamespace, Attempt: 0},
		Hostname:     name,
		LogDirectory: f.logDir,
		DnsConfig: &runtimeapi.DNSConfig{
			Servers:  []string{"10.96.0.10"},
			Searches: []string{benchNamespace + ".svc.cluster.local", "svc.cluster.local", "cluster.local"},
			Options:  []string{"ndots:5"},
		},
		// A declared container port without a hostPort, as most pods have.
		PortMappings: []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 8080}},
		Labels: map[string]string{
			"io.kubernetes.pod.name":      name,
			"io.kubernetes.pod.namespace": benchNamespace,
			"io.kubernetes.pod.uid":       uid,
			"app":                         "berth-bench",
			runLabel:                      s.runID,
		},
		Annotations: map[string]string{
			"kubernetes.io/config.source": "api",
			"kubernetes.io/config.seen":   time.Now().Format(time.RFC3339Nano),
		},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: s.podCgroup(uid),
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: pid, Ipc: runtimeapi.NamespaceMode_POD},
				Seccomp:          &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined},
			},
			Resources: &runtimeapi.LinuxContainerResources{CpuShares: 2, CpuPeriod: 100000},
		},
	}
	return cfg, f, nil
}

// podCgroup is kubelet's cgroup for a BestEffort pod, below the bench's own
// parent so that the bench can remove what it made.
func (s *shaper) podCgroup(uid string) string {
	if s.cgroupParent == "" {
		return ""
	}
	if s.systemd {
		// The systemd driver wants a slice name: kubepods-besteffort-pod<uid>.slice.
		return s.cgroupParent + "-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice"
	}
	return s.cgroupParent + "/pod" + uid
}

// container returns the config kubelet sends for a BestEffort container
// running cmd in pod.
func (s *shaper) container(pod *runtimeapi.PodSandboxConfig, f podFiles, cmd ...string) *runtimeapi.ContainerConfig {
	md := pod.Metadata
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: containerName, Attempt: 0},
		Image:    &runtimeapi.ImageSpec{Image: s.imageRef, UserSpecifiedImage: s.userImage},
		Command:  cmd,
		LogPath:  containerName + "/0.log",
		Envs: []*runtimeapi.KeyValue{
			{Key: "KUBERNETES_SERVICE_HOST", Value: []byte("10.96.0.1")},
			{Key: "KUBERNETES_SERVICE_PORT", Value: []byte("443")},
		},
		Mounts: []*runtimeapi.Mount{
			{ContainerPath: "/etc/hosts", HostPath: f.hostsFile},
			{ContainerPath: "/dev/termination-log", HostPath: f.termLog},
		},
		Labels: map[string]string{
			"io.kubernetes.container.name": containerName,
			"io.kubernetes.pod.name":       md.Name,
			"io.kubernetes.pod.namespace":  md.Namespace,
			"io.kubernetes.pod.uid":        md.Uid,
		},
		Annotations: map[string]string{
			"io.kubernetes.container.hash":                     "5f8a1c2e",
			"io.kubernetes.container.restartCount":             "0",
			"io.kubernetes.container.terminationMessagePath":   "/dev/termination-log",
			"io.kubernetes.container.terminationMessagePolicy": "File",
			"io.kubernetes.pod.terminationGracePeriod":         "30",
			"io.kubernetes.container.ports":                    `[{"containerPort":8080,"protocol":"TCP"}]`,
		},
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources: &runtimeapi.LinuxContainerResources{CpuShares: 2, CpuPeriod: 100000, OomScoreAdj: 1000},
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: pod.Linux.SecurityContext.NamespaceOptions,
				MaskedPaths:      maskedPaths,
				ReadonlyPaths:    readonlyPaths,
				Seccomp:          &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined},
			},
		},
	}
}
