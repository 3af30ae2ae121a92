package nri

import (
	"testing"

	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestPodToNRI(t *testing.T) {
	p := testPod()
	p.RuntimeHandler, p.CgroupsPath, p.Pid, p.IPs = "runc", "/kubepods/pod-u1", 42, []string{"10.0.0.2"}
	p.Config.Annotations = map[string]string{"a": "b"}
	p.Config.Linux = &runtimeapi.LinuxPodSandboxConfig{
		CgroupParent: "/kubepods",
		Resources:    &runtimeapi.LinuxContainerResources{CpuShares: 1024, MemoryLimitInBytes: 1 << 30},
	}
	n := podToNRI(p)
	if n.Id != "pod1" || n.Name != "p" || n.Namespace != "ns" || n.Uid != "u1" || n.Labels["app"] != "x" || n.Annotations["a"] != "b" ||
		n.RuntimeHandler != "runc" || n.Pid != 42 || n.Ips[0] != "10.0.0.2" {
		t.Errorf("pod %v", n)
	}
	l := n.Linux
	if l.CgroupParent != "/kubepods" || l.CgroupsPath != "/kubepods/pod-u1" || len(l.Namespaces) != 1 || l.Namespaces[0].Type != "network" ||
		l.PodResources.GetCpu().GetShares().GetValue() != 1024 || l.PodResources.GetMemory().GetLimit().GetValue() != 1<<30 || l.PodOverhead != nil {
		t.Errorf("linux %v", l)
	}
	// Newer pod resources (UpdatePodSandboxResources) win over the config's.
	p.Resources = &runtimeapi.LinuxContainerResources{CpuShares: 2048}
	if got := podToNRI(p).Linux.PodResources.GetCpu().GetShares().GetValue(); got != 2048 {
		t.Errorf("pod resources shares %d", got)
	}
}

func TestContainerToNRI(t *testing.T) {
	c, s := testContainer("c1")
	oom, limit := 100, int64(1<<20)
	s.Process.OOMScoreAdj = &oom
	s.Process.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{5}}
	s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 10, Soft: 5}}
	s.Mounts = []specs.Mount{{Destination: "/data", Source: "/host", Type: "bind"}}
	s.Annotations = map[string]string{"io.kubernetes.cri.container-type": "container"}
	s.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}}
	c.State = runtimeapi.ContainerState_CONTAINER_EXITED
	c.Config.CDIDevices = []*runtimeapi.CDIDevice{{Name: "example.com/test=nulldev"}}
	c.Config.Linux = &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
		Seccomp: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
	}}
	c.Image = Image{Name: "busybox", ConfigDigest: "sha256:abc"}
	n := containerToNRI(c)
	if n.Id != "c1" || n.PodSandboxId != "pod1" || n.Name != "c-c1" || n.State != api.ContainerState_CONTAINER_STOPPED ||
		n.Annotations["io.kubernetes.cri.container-type"] != "container" || n.Labels["l"] != "v" {
		t.Errorf("container %v", n)
	}
	if n.User.Uid != 1000 || n.User.AdditionalGids[0] != 5 || n.Rlimits[0].Soft != 5 || n.Mounts[0].Destination != "/data" ||
		n.CDIDevices[0].Name != "example.com/test=nulldev" || n.Image.ConfigDigest != "sha256:abc" {
		t.Errorf("container %v", n)
	}
	if n.Linux.OomScoreAdj.GetValue() != 100 || n.Linux.Resources.GetMemory().GetLimit().GetValue() != 1<<20 ||
		n.Linux.SeccompProfile.GetProfileType() != api.SecurityProfile_RUNTIME_DEFAULT || n.Linux.CgroupsPath != "/pod1/c1" {
		t.Errorf("linux %v", n.Linux)
	}
}
