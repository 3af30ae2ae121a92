package nri

import (
	"maps"
	"slices"

	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Pod is what plugins are told about a pod sandbox. The pod layer fills it
// from its records; this package reads no store.
type Pod struct {
	ID             string
	Config         *runtimeapi.PodSandboxConfig // metadata, labels, annotations, cgroup parent
	RuntimeHandler string
	// CgroupsPath is the pod-level cgroup berth made for the sandbox.
	CgroupsPath string
	// Pid is the sandbox's infra process, 0 if it has none.
	Pid uint32
	IPs []string
	// Namespaces are the pod's shared namespaces with their paths.
	Namespaces []specs.LinuxNamespace
	// Overhead and Resources are the pod-level resources; nil takes them
	// from Config.Linux (UpdatePodSandboxResources passes newer ones).
	Overhead  *runtimeapi.LinuxContainerResources
	Resources *runtimeapi.LinuxContainerResources
}

// Container is what plugins are told about a container.
type Container struct {
	ID     string
	PodID  string
	Config *runtimeapi.ContainerConfig // name, labels, CDI devices, seccomp profile
	// Spec is the container's OCI spec: args, env, mounts, hooks, devices,
	// resources and annotations are read from it.
	Spec *specs.Spec

	State      runtimeapi.ContainerState
	Pid        uint32
	CreatedAt  int64 // unix nanoseconds, as CRI reports them
	StartedAt  int64
	FinishedAt int64
	ExitCode   int32
	Reason     string
	Message    string

	Image Image
}

// Image names the container's image for plugins.
type Image struct {
	Name         string // the reference as requested
	Digest       string // index or manifest digest
	ConfigDigest string // the image ID
}

func podToNRI(p *Pod) *api.PodSandbox {
	if p == nil {
		return &api.PodSandbox{}
	}
	cfg := p.Config
	out := &api.PodSandbox{
		Id:             p.ID,
		Name:           cfg.GetMetadata().GetName(),
		Uid:            cfg.GetMetadata().GetUid(),
		Namespace:      cfg.GetMetadata().GetNamespace(),
		Labels:         maps.Clone(cfg.GetLabels()),
		Annotations:    maps.Clone(cfg.GetAnnotations()),
		RuntimeHandler: p.RuntimeHandler,
		Pid:            p.Pid,
		Ips:            slices.Clone(p.IPs),
	}
	overhead, resources := p.Overhead, p.Resources
	if overhead == nil {
		overhead = cfg.GetLinux().GetOverhead()
	}
	if resources == nil {
		resources = cfg.GetLinux().GetResources()
	}
	out.Linux = &api.LinuxPodSandbox{
		PodOverhead:  FromCRIResources(overhead),
		PodResources: FromCRIResources(resources),
		CgroupParent: cfg.GetLinux().GetCgroupParent(),
		CgroupsPath:  p.CgroupsPath,
		Namespaces:   api.FromOCILinuxNamespaces(p.Namespaces),
		Resources:    FromCRIResources(resources),
	}
	return out
}

func podsToNRI(pods []*Pod) []*api.PodSandbox {
	out := make([]*api.PodSandbox, 0, len(pods))
	for _, p := range pods {
		out = append(out, podToNRI(p))
	}
	return out
}

func containerToNRI(c *Container) *api.Container {
	cfg := c.Config
	out := &api.Container{
		Id:            c.ID,
		PodSandboxId:  c.PodID,
		Name:          cfg.GetMetadata().GetName(),
		State:         stateToNRI(c.State),
		Labels:        maps.Clone(cfg.GetLabels()),
		Annotations:   maps.Clone(cfg.GetAnnotations()),
		Pid:           c.Pid,
		CreatedAt:     c.CreatedAt,
		StartedAt:     c.StartedAt,
		FinishedAt:    c.FinishedAt,
		ExitCode:      c.ExitCode,
		StatusReason:  c.Reason,
		StatusMessage: c.Message,
		Image: &api.Image{
			Name:         c.Image.Name,
			Digest:       c.Image.Digest,
			ConfigDigest: c.Image.ConfigDigest,
		},
		Linux: &api.LinuxContainer{
			SeccompProfile: seccompProfileToNRI(cfg.GetLinux().GetSecurityContext().GetSeccomp()),
		},
	}
	for _, d := range cfg.GetCDIDevices() {
		out.CDIDevices = append(out.CDIDevices, &api.CDIDevice{Name: d.GetName()})
	}
	s := c.Spec
	if s == nil {
		return out
	}
	// Plugins are shown the CRI annotations (a runtime handler's
	// allow-list keeps most out of the spec, but plugins act on them)
	// and the spec's, which the runtime sees, on top.
	if len(s.Annotations) != 0 {
		if out.Annotations == nil {
			out.Annotations = map[string]string{}
		}
		maps.Copy(out.Annotations, s.Annotations)
	}
	out.Mounts = api.FromOCIMounts(s.Mounts)
	out.Hooks = api.FromOCIHooks(s.Hooks)
	if p := s.Process; p != nil {
		out.Args = slices.Clone(p.Args)
		out.Env = slices.Clone(p.Env)
		for _, r := range p.Rlimits {
			out.Rlimits = append(out.Rlimits, &api.POSIXRlimit{Type: r.Type, Hard: r.Hard, Soft: r.Soft})
		}
		out.User = &api.User{Uid: p.User.UID, Gid: p.User.GID, AdditionalGids: slices.Clone(p.User.AdditionalGids)}
		out.Linux.OomScoreAdj = api.Int(p.OOMScoreAdj)
		out.Linux.IoPriority = api.FromOCILinuxIOPriority(p.IOPriority)
		out.Linux.Scheduler = api.FromOCILinuxScheduler(p.Scheduler)
	}
	if l := s.Linux; l != nil {
		out.Linux.Namespaces = api.FromOCILinuxNamespaces(l.Namespaces)
		out.Linux.Devices = api.FromOCILinuxDevices(l.Devices)
		out.Linux.Resources = api.FromOCILinuxResources(l.Resources, nil)
		out.Linux.CgroupsPath = l.CgroupsPath
		out.Linux.Sysctl = maps.Clone(l.Sysctl)
		if l.Seccomp != nil {
			out.Linux.SeccompPolicy = api.FromOCILinuxSeccomp(l.Seccomp)
		}
		out.Linux.NetDevices = api.FromOCILinuxNetDevices(l.NetDevices)
	}
	return out
}

func containersToNRI(ctrs []*Container) []*api.Container {
	out := make([]*api.Container, 0, len(ctrs))
	for _, c := range ctrs {
		out = append(out, containerToNRI(c))
	}
	return out
}

func stateToNRI(s runtimeapi.ContainerState) api.ContainerState {
	switch s {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		return api.ContainerState_CONTAINER_CREATED
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return api.ContainerState_CONTAINER_RUNNING
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return api.ContainerState_CONTAINER_STOPPED
	default:
		return api.ContainerState_CONTAINER_UNKNOWN
	}
}

func seccompProfileToNRI(p *runtimeapi.SecurityProfile) *api.SecurityProfile {
	if p == nil {
		return nil
	}
	out := &api.SecurityProfile{LocalhostRef: p.GetLocalhostRef()}
	switch p.GetProfileType() {
	case runtimeapi.SecurityProfile_RuntimeDefault:
		out.ProfileType = api.SecurityProfile_RUNTIME_DEFAULT
	case runtimeapi.SecurityProfile_Unconfined:
		out.ProfileType = api.SecurityProfile_UNCONFINED
	case runtimeapi.SecurityProfile_Localhost:
		out.ProfileType = api.SecurityProfile_LOCALHOST
	}
	return out
}
