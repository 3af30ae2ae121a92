// Package spec builds OCI runtime specs from CRI configs.
//
// Spec generation is a pure function of its input: every piece is a small
// Opt applied in order to a default spec, so each rule can be tested on
// its own. The only host access goes through HostFS (stat of mount sources,
// device nodes, seccomp profile files) and the container rootfs (for
// /etc/passwd and /etc/group, read confined to the rootfs).
package spec

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

// Opt changes one aspect of a spec. Options are applied in order; a later
// option sees what earlier ones did.
type Opt func(*specs.Spec) error

// Apply applies opts to s in order and stops at the first error.
func Apply(s *specs.Spec, opts ...Opt) error {
	for _, o := range opts {
		if err := o(s); err != nil {
			return err
		}
	}
	return nil
}

// Annotations berth puts on every spec, with the keys containerd's CRI
// plugin uses, so that tools (NRI plugins, runsc, kata) that read them work
// unchanged.
const (
	AnnotationContainerType    = "io.kubernetes.cri.container-type"
	AnnotationSandboxID        = "io.kubernetes.cri.sandbox-id"
	AnnotationSandboxName      = "io.kubernetes.cri.sandbox-name"
	AnnotationSandboxNamespace = "io.kubernetes.cri.sandbox-namespace"
	AnnotationSandboxUID       = "io.kubernetes.cri.sandbox-uid"
	AnnotationSandboxLogDir    = "io.kubernetes.cri.sandbox-log-directory"
	AnnotationContainerName    = "io.kubernetes.cri.container-name"
	AnnotationImageName        = "io.kubernetes.cri.image-name"
	ContainerTypeContainer     = "container"
	ContainerTypeSandbox       = "sandbox"
	criAnnotationPrefix        = "io.kubernetes.cri."
	defaultSandboxCPUShares    = 2
	defaultPauseUID            = 65535
	defaultRootfsPathInSpecs   = "rootfs"
)

// ImageInfo is what spec generation needs from the image: its config
// (treated as data, never as instructions to the host) and its names.
type ImageInfo struct {
	Name       string // the reference the user asked for, e.g. "docker.io/library/busybox:1.36"
	ID         string // image ID (config digest)
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	User       string
	StopSignal string // not part of the spec; carried for the caller
}

// SandboxNamespaces are the pod's pinned namespace files. An empty path
// means the pod has no namespace of that kind of its own (host network,
// host IPC, or no shared PID namespace).
type SandboxNamespaces struct {
	Net string
	IPC string
	UTS string
	PID string // the pause process's PID namespace, set only when the pod shares one
	// User is the pod's user namespace, set only for a pod in one.
	User string
}

// HostFS is the host access spec generation needs. OSHost is the real one;
// tests pass fakes.
type HostFS interface {
	// Stat reports whether a bind mount source exists.
	Stat(path string) error
	// Devices returns the device node at path, or every device node under
	// path when it is a directory, with Path set to the host path.
	Devices(path string) ([]specs.LinuxDevice, error)
	// ReadFile reads a seccomp profile.
	ReadFile(path string) ([]byte, error)
}

// HostConfig is what the daemon knows about its host and runtime handler.
// It is built once at start and shared by every spec.
type HostConfig struct {
	// AllCapabilities is the daemon's bounding set (BoundingCapabilities):
	// what privileged containers and "ALL" get. Never more than berthd has.
	AllCapabilities []string
	// DefaultCapabilities for unprivileged containers; nil means
	// DefaultCapabilities().
	DefaultCapabilities []string
	// AppArmorEnabled says the kernel has AppArmor; a container asking for a
	// profile on a host without it is refused.
	AppArmorEnabled bool
	// AppArmorDefaultProfile is the loaded profile used for RuntimeDefault
	// (and for containers that do not say); empty where AppArmor is enabled
	// means it failed to load, and such containers are refused.
	AppArmorDefaultProfile string
	// SELinuxEnabled says the host enforces SELinux, where berth refuses
	// selinux_options it cannot apply (WithSELinux).
	SELinuxEnabled bool
	// SeccompDefaultWhenUnset applies RuntimeDefault to containers whose
	// config names no seccomp profile. containerd's default is unconfined;
	// kubelet always names one, so this only changes crictl-style clients.
	SeccompDefaultWhenUnset bool
	// SwapLimit says the memory cgroup can limit swap (memsw / memory.swap.max).
	SwapLimit bool
	// Hugetlb says the hugetlb cgroup controller exists; hugepage limits are
	// dropped without it.
	Hugetlb bool
	// CgroupNamespace gives unprivileged containers a cgroup namespace (set
	// it on cgroup v2 hosts, as containerd does).
	CgroupNamespace bool
	// RecursiveReadOnlyMounts says the OCI runtime and kernel support "rro".
	RecursiveReadOnlyMounts bool
	// MountOptions are the mount options the handler's runtime accepts
	// (CRI mount_options are checked against them); nil: none are.
	MountOptions []string
	// UserNamespaces says the handler runs pods in user namespaces.
	UserNamespaces bool
	// PrivilegedWithoutHostDevices keeps the host's devices out of
	// privileged containers (the handler's privileged_without_host_devices).
	PrivilegedWithoutHostDevices bool
	// PidsLimit caps processes per container when > 0.
	PidsLimit int64
	// OOMScoreAdjMin clamps oom_score_adj from below, for hosts where berthd
	// cannot lower a score below its own (no CAP_SYS_RESOURCE).
	OOMScoreAdjMin *int
	// NodeHostname is HOSTNAME for pods that set none.
	NodeHostname string
	// PodAnnotations and ContainerAnnotations are the handler's allow-lists
	// (FilterAnnotations patterns): only matching pod and container
	// annotations reach the OCI spec. Empty lets none through.
	PodAnnotations, ContainerAnnotations []string
	// FS is the host access; nil means OSHost.
	FS HostFS
}

func (h *HostConfig) fs() HostFS {
	if h.FS == nil {
		return OSHost{}
	}
	return h.FS
}

// propagation is the host's mount propagation check, when its HostFS has one.
func (h *HostConfig) propagation() func(string) (MountPropagation, error) {
	if c, ok := h.fs().(PropagationChecker); ok {
		return c.Propagation
	}
	return nil
}

func (h *HostConfig) defaultCaps() []string {
	if h.DefaultCapabilities != nil {
		return h.DefaultCapabilities
	}
	return DefaultCapabilities()
}

// ContainerInput is everything GenerateContainer needs for one container.
type ContainerInput struct {
	ID string
	// Container is the request, checked by ValidateContainer.
	Container *Container
	SandboxID string
	Image     ImageInfo
	// RootfsPath is the mounted rootfs on the host. It becomes root.path,
	// and /etc/passwd and /etc/group are read inside it to resolve users.
	RootfsPath string
	Namespaces SandboxNamespaces
	// TargetPIDNamespace is the PID namespace file of the target container
	// for namespace_options.pid = TARGET.
	TargetPIDNamespace string
	// ImageVolumeSources are the host paths of the container's image
	// volumes (Container.ImageVolumes, in order): the mounted image, at its
	// sub path.
	ImageVolumeSources []string
	// Pod files bind mounted into the container; empty means not mounted.
	HostsPath, ResolvPath, HostnamePath, ShmPath string
	CgroupsPath                                  string
	Host                                         HostConfig
}

// SandboxInput is what GenerateSandbox needs for a pod's pause process,
// which exists only to hold a PID namespace shared by the pod.
type SandboxInput struct {
	ID string
	// Pod is the pod's config, checked by ValidatePod.
	Pod        *Pod
	RootfsPath string   // directory holding the pause binary
	Args       []string // default: ["/pause"]
	// Namespaces: the pause process joins the pinned net, ipc and uts
	// namespaces; its PID namespace is new (PID is ignored).
	Namespaces  SandboxNamespaces
	CgroupsPath string
	Host        HostConfig
}

// DefaultCapabilities is containerd 1.x's CRI default set (Docker's), which
// the reference specs show, less CAP_MKNOD (as CRI-O): a device node made in
// a container is opened without the container's device cgroup by a host
// user of the same uid through /proc/<pid>/root. Pod Security "baseline"
// allows all of them but NET_RAW. Operators narrow it with
// HostConfig.DefaultCapabilities; a pod that needs mknod adds CAP_MKNOD.
func DefaultCapabilities() []string {
	return []string{
		"CAP_CHOWN",
		"CAP_DAC_OVERRIDE",
		"CAP_FSETID",
		"CAP_FOWNER",
		"CAP_NET_RAW",
		"CAP_SETGID",
		"CAP_SETUID",
		"CAP_SETFCAP",
		"CAP_SETPCAP",
		"CAP_NET_BIND_SERVICE",
		"CAP_SYS_CHROOT",
		"CAP_KILL",
		"CAP_AUDIT_WRITE",
	}
}

// DefaultMaskedPaths is kubelet's list (a superset of containerd's), used
// when the CRI config names none.
func DefaultMaskedPaths() []string {
	return []string{
		"/proc/asound",
		"/proc/acpi",
		"/proc/interrupts",
		"/proc/kcore",
		"/proc/keys",
		"/proc/latency_stats",
		"/proc/timer_list",
		"/proc/timer_stats",
		"/proc/sched_debug",
		"/proc/scsi",
		"/sys/firmware",
		"/sys/devices/virtual/powercap",
	}
}

// DefaultReadonlyPaths is kubelet's and containerd's list.
func DefaultReadonlyPaths() []string {
	return []string{
		"/proc/bus",
		"/proc/fs",
		"/proc/irq",
		"/proc/sys",
		"/proc/sysrq-trigger",
	}
}

// baseSpec is the starting point every spec is built from: no process args,
// root user, default caps, deny-all devices, new mount namespace.
func baseSpec(rootfs string, caps []string) *specs.Spec {
	if rootfs == "" {
		rootfs = defaultRootfsPathInSpecs
	}
	return &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: rootfs},
		Process: &specs.Process{
			Cwd: "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  append([]string(nil), caps...),
				Effective: append([]string(nil), caps...),
				Permitted: append([]string(nil), caps...),
			},
		},
		Mounts: defaultMounts(),
		Linux: &specs.Linux{
			MaskedPaths:   DefaultMaskedPaths(),
			ReadonlyPaths: DefaultReadonlyPaths(),
			Resources: &specs.LinuxResources{
				Devices: denyAllDevices(),
			},
			Namespaces: []specs.LinuxNamespace{{Type: specs.MountNamespace}},
		},
	}
}

// GenerateContainer builds the OCI spec for a container from its checked
// request. What can still fail depends on the image (its USER and
// /etc/passwd, a command to run) or on the pod's namespaces. ctx bounds the
// reads of the image's /etc/passwd and /etc/group.
func GenerateContainer(ctx context.Context, in *ContainerInput) (*specs.Spec, error) {
	if in == nil || in.Container == nil {
		return nil, errdefs.Invalid("container config is required")
	}
	c := in.Container
	cfg, pod := c.Config, c.Pod
	sc := cfg.GetLinux().GetSecurityContext()
	host := &in.Host
	hostname := pod.Config.GetHostname()
	if hostname == "" {
		hostname = host.NodeHostname
	}
	userstr := c.User.userString(in.Image.User)
	if len(in.ImageVolumeSources) != len(c.ImageVolumes) {
		return nil, fmt.Errorf("%d image volumes but %d mounted images", len(c.ImageVolumes), len(in.ImageVolumeSources))
	}
	mounts := slices.Clone(c.Mounts)
	idmapped := map[string]bool{}
	for i, v := range c.ImageVolumes {
		mounts[v.Mount].Source = in.ImageVolumeSources[i]
		idmapped[mounts[v.Mount].Destination] = true
	}
	opts := []Opt{
		WithProcessArgs(cfg.GetCommand(), cfg.GetArgs(), in.Image.Entrypoint, in.Image.Cmd),
		WithDefaultPathEnv(),
		WithEnv([]string{"HOSTNAME=" + hostname}),
		WithEnv(mergeEnv(in.Image.Env, cfg.GetEnvs())),
		WithWorkingDir(cfg.GetWorkingDir(), in.Image.WorkingDir),
		WithTerminal(cfg.GetTty()),
		WithUser(ctx, in.RootfsPath, userstr),
	}
	if c.MergeImageGroups {
		// Group membership is looked up by the user part only, as containerd does.
		opts = append(opts, WithAdditionalGIDs(ctx, in.RootfsPath, userPart(userstr)))
	}
	opts = append(opts,
		WithSupplementalGroups(c.SupplementalGroups),
		WithCgroupMount(),
		WithMounts(podFileMounts(in)),
		WithMounts(mounts),
		WithRootfsPropagation(c.RootfsPropagation),
		WithMaskedPaths(c.MaskedPaths),
		WithReadonlyPaths(c.ReadonlyPaths),
		WithDefaultDeviceRules(),
		WithDevices(c.Devices),
		WithCapabilities(c.Capabilities),
	)
	if c.Privileged {
		devices := host.fs().Devices
		if host.PrivilegedWithoutHostDevices {
			devices = func(string) ([]specs.LinuxDevice, error) { return nil, nil }
		}
		opts = append(opts, WithPrivileged(host.AllCapabilities, devices))
	}
	opts = append(opts,
		WithNoNewPrivileges(sc.GetNoNewPrivs()),
		WithReadonlyRootfs(sc.GetReadonlyRootfs()),
		WithResources(c.Resources, ResourceOptions{
			SwapLimit: host.SwapLimit,
			Hugetlb:   host.Hugetlb,
			PidsLimit: host.PidsLimit,
		}),
		WithOOMScoreAdj(c.Resources, host.OOMScoreAdjMin),
		WithCgroupsPath(in.CgroupsPath),
	)
	nsOpt, err := containerNamespaces(pod, c.PIDMode, in.Namespaces, in.TargetPIDNamespace, idmapped)
	if err != nil {
		return nil, err
	}
	opts = append(opts, nsOpt)
	if host.CgroupNamespace && !c.Privileged {
		opts = append(opts, WithNamespace(specs.CgroupNamespace, ""))
	}
	opts = append(opts,
		WithSysctls(pod.Sysctls),
		WithAppArmor(c.AppArmor),
		// Seccomp last: the default profile allows syscalls by the
		// capabilities the spec ends up with.
		WithSeccomp(c.Seccomp),
		// Pod, then container annotations, as containerd orders them;
		// berth's own last, so a client cannot forge them.
		WithAnnotations(FilterAnnotations(host.PodAnnotations, pod.Config.GetAnnotations())),
		WithAnnotations(FilterAnnotations(host.ContainerAnnotations, cfg.GetAnnotations())),
		WithAnnotations(criAnnotations(ContainerTypeContainer, in.SandboxID, pod.Config, map[string]string{
			AnnotationContainerName: cfg.GetMetadata().GetName(),
			AnnotationImageName:     in.Image.Name,
		})),
	)

	s := baseSpec(in.RootfsPath, host.defaultCaps())
	if err := Apply(s, opts...); err != nil {
		return nil, err
	}
	return s, nil
}

// GenerateSandbox builds the spec of a pod's pause process. berth runs
// one only for pods that share their PID namespace: it is PID 1 there,
// reaping zombies. It runs as 65535 with no capabilities, a read-only root,
// no_new_privileges and the default seccomp profile.
func GenerateSandbox(in *SandboxInput) (*specs.Spec, error) {
	if in == nil || in.Pod == nil {
		return nil, errdefs.Invalid("sandbox config is required")
	}
	host := &in.Host
	pod := in.Pod
	args := in.Args
	if len(args) == 0 {
		args = []string{"/pause"}
	}
	seccompProfile := pod.PauseSeccomp
	if seccompProfile.Type == runtimeapi.SecurityProfile_Localhost && seccompProfile.Profile == nil {
		var err error
		ref := &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: seccompProfile.Path}
		if seccompProfile, err = resolveSeccomp(ref, host.fs().ReadFile); err != nil {
			return nil, err
		}
	}
	adj := -998 // kubelet's sandbox score
	uid := int64(defaultPauseUID)
	if u := pod.UserNS; u != nil && (int64(u.UIDs[0].Size) <= uid || int64(u.GIDs[0].Size) <= uid) {
		// 65535 is not mapped in a small user namespace: its root, which
		// holds no capability there, runs the pause process instead.
		uid = 0
	}

	opts := []Opt{
		WithProcessArgs(args, nil, nil, nil),
		WithUser(context.Background(), "", strconv.FormatInt(uid, 10)+":"+strconv.FormatInt(uid, 10)),
		WithCapabilities(Capabilities{}),
		WithNoNewPrivileges(true),
		WithReadonlyRootfs(true),
		WithDefaultDeviceRules(),
		WithResources(&runtimeapi.LinuxContainerResources{CpuShares: defaultSandboxCPUShares}, ResourceOptions{}),
		WithOOMScoreAdj(&runtimeapi.LinuxContainerResources{OomScoreAdj: int64(adj)}, host.OOMScoreAdjMin),
		WithCgroupsPath(in.CgroupsPath),
		WithNamespace(specs.PIDNamespace, ""),
	}
	if pod.Network != runtimeapi.NamespaceMode_NODE {
		if in.Namespaces.Net == "" {
			return nil, errdefs.Invalid("sandbox has no network namespace path for a pod with its own network")
		}
		opts = append(opts, WithNamespace(specs.NetworkNamespace, in.Namespaces.Net))
		if in.Namespaces.UTS != "" {
			opts = append(opts, WithNamespace(specs.UTSNamespace, in.Namespaces.UTS))
		}
	}
	if pod.IPC != runtimeapi.NamespaceMode_NODE {
		if in.Namespaces.IPC == "" {
			return nil, errdefs.Invalid("sandbox has no IPC namespace path for a pod with its own IPC")
		}
		opts = append(opts, WithNamespace(specs.IPCNamespace, in.Namespaces.IPC))
	}
	if pod.UserNS != nil {
		if in.Namespaces.User == "" {
			return nil, errdefs.Invalid("sandbox has no user namespace path for a pod in one")
		}
		opts = append(opts, WithUserNamespace(in.Namespaces.User, pod.UserNS, nil))
	}
	opts = append(opts,
		WithSeccomp(seccompProfile),
		WithAnnotations(FilterAnnotations(host.PodAnnotations, pod.Config.GetAnnotations())),
		WithAnnotations(criAnnotations(ContainerTypeSandbox, in.ID, pod.Config, map[string]string{
			AnnotationSandboxLogDir: pod.Config.GetLogDirectory(),
		})),
	)
	s := baseSpec(in.RootfsPath, nil)
	s.Process.Capabilities = &specs.LinuxCapabilities{}
	if err := Apply(s, opts...); err != nil {
		return nil, err
	}
	return s, nil
}

// criAnnotations are the io.kubernetes.cri.* annotations containerd sets.
func criAnnotations(kind, sandboxID string, sb *runtimeapi.PodSandboxConfig, extra map[string]string) map[string]string {
	a := map[string]string{
		AnnotationContainerType:    kind,
		AnnotationSandboxID:        sandboxID,
		AnnotationSandboxName:      sb.GetMetadata().GetName(),
		AnnotationSandboxNamespace: sb.GetMetadata().GetNamespace(),
		AnnotationSandboxUID:       sb.GetMetadata().GetUid(),
	}
	for k, v := range extra {
		a[k] = v
	}
	return a
}

// WithAnnotations adds annotations, replacing existing keys.
func WithAnnotations(a map[string]string) Opt {
	return func(s *specs.Spec) error {
		if len(a) == 0 {
			return nil
		}
		if s.Annotations == nil {
			s.Annotations = make(map[string]string, len(a))
		}
		for k, v := range a {
			s.Annotations[k] = v
		}
		return nil
	}
}

// WithCgroupsPath sets linux.cgroupsPath (computed by the caller for the
// cgroup driver in use).
func WithCgroupsPath(p string) Opt {
	return func(s *specs.Spec) error {
		ensureLinux(s)
		s.Linux.CgroupsPath = p
		return nil
	}
}

func ensureLinux(s *specs.Spec) {
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
}

func ensureResources(s *specs.Spec) {
	ensureLinux(s)
	if s.Linux.Resources == nil {
		s.Linux.Resources = &specs.LinuxResources{}
	}
}

func ensureProcess(s *specs.Spec) {
	if s.Process == nil {
		s.Process = &specs.Process{Cwd: "/"}
	}
}

func ensureCaps(s *specs.Spec) {
	ensureProcess(s)
	if s.Process.Capabilities == nil {
		s.Process.Capabilities = &specs.LinuxCapabilities{}
	}
}

// isAbs reports whether p is an absolute container (Linux) path.
func isAbs(p string) bool { return path.IsAbs(p) }
