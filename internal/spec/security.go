package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

// capNames are the Linux capabilities by number (linux/capability.h).
var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// capName normalises a CRI capability ("net_admin", "CAP_NET_ADMIN")
// to the OCI form and checks that Linux knows it.
func capName(field, c string) (string, error) {
	name := strings.ToUpper(c)
	if !strings.HasPrefix(name, "CAP_") {
		name = "CAP_" + name
	}
	if !slices.Contains(capNames, name) {
		return "", errdefs.Invalid(fmt.Sprintf("%s: unknown capability %q", field, c))
	}
	return name, nil
}

// Capabilities is a process's capability sets after the CRI adds and drops.
type Capabilities struct {
	Granted []string // bounding, effective and permitted
	Ambient []string // also inheritable
}

// resolveCapabilities starts from defaults and applies the CRI adds and
// drops. "ALL" in add grants every capability in all (the daemon's bounding
// set); "ALL" in drop removes every one; the named adds and drops then apply
// on top, so add [ALL] drop [CHOWN] is everything but CHOWN. A capability
// outside the daemon's bounding set cannot be granted and is refused.
// Ambient capabilities are cleared unless asked for (containerd's rule).
func resolveCapabilities(defaults []string, c *runtimeapi.Capability, all []string) (Capabilities, error) {
	const field = "linux.security_context.capabilities"
	caps := slices.Clone(defaults)
	isAll := func(v string) bool { return strings.EqualFold(v, "ALL") }
	if slices.ContainsFunc(c.GetAddCapabilities(), isAll) {
		if len(all) == 0 {
			return Capabilities{}, errors.New("capability \"ALL\" requested but the daemon's bounding set is unknown (HostConfig.AllCapabilities)")
		}
		caps = slices.Clone(all)
	}
	if slices.ContainsFunc(c.GetDropCapabilities(), isAll) {
		caps = nil
	}
	for _, a := range c.GetAddCapabilities() {
		if isAll(a) {
			continue
		}
		name, err := capName(field+".add_capabilities", a)
		if err != nil {
			return Capabilities{}, err
		}
		if all != nil && !slices.Contains(all, name) {
			return Capabilities{}, errdefs.Invalid(fmt.Sprintf("%s.add_capabilities: %s is not in berthd's bounding set on this node", field, name))
		}
		if !slices.Contains(caps, name) {
			caps = append(caps, name)
		}
	}
	for _, d := range c.GetDropCapabilities() {
		if isAll(d) {
			continue
		}
		name, err := capName(field+".drop_capabilities", d)
		if err != nil {
			return Capabilities{}, err
		}
		caps = slices.DeleteFunc(caps, func(x string) bool { return x == name })
	}
	var ambient []string
	for _, a := range c.GetAddAmbientCapabilities() {
		name, err := capName(field+".add_ambient_capabilities", a)
		if err != nil {
			return Capabilities{}, err
		}
		if !slices.Contains(caps, name) {
			return Capabilities{}, errdefs.Invalid(fmt.Sprintf("%s.add_ambient_capabilities: %s must also be granted (add_capabilities or the defaults)", field, name))
		}
		ambient = append(ambient, name)
	}
	return Capabilities{Granted: caps, Ambient: ambient}, nil
}

// WithCapabilities sets the process's capabilities.
func WithCapabilities(c Capabilities) Opt {
	return func(s *specs.Spec) error {
		ensureProcess(s)
		s.Process.Capabilities = &specs.LinuxCapabilities{
			Bounding:    slices.Clone(c.Granted),
			Effective:   slices.Clone(c.Granted),
			Permitted:   slices.Clone(c.Granted),
			Inheritable: slices.Clone(c.Ambient),
			Ambient:     slices.Clone(c.Ambient),
		}
		return nil
	}
}

// WithPrivileged makes a privileged container: every capability berthd
// has (not every capability the kernel knows), every host device with the
// device cgroup open, /proc unmasked, and sysfs and cgroupfs writable.
// Seccomp and AppArmor are dropped by their own options.
func WithPrivileged(all []string, devices DeviceLookup) Opt {
	return func(s *specs.Spec) error {
		if len(all) == 0 {
			return errors.New("privileged container requested but the daemon's bounding set is unknown (HostConfig.AllCapabilities)")
		}
		ensureCaps(s)
		s.Process.Capabilities.Bounding = slices.Clone(all)
		s.Process.Capabilities.Effective = slices.Clone(all)
		s.Process.Capabilities.Permitted = slices.Clone(all)
		ensureResources(s)
		s.Linux.MaskedPaths = nil
		s.Linux.ReadonlyPaths = nil
		for i := range s.Mounts {
			if s.Mounts[i].Type != "sysfs" && s.Mounts[i].Type != "cgroup" {
				continue
			}
			opts := slices.Clone(s.Mounts[i].Options)
			for j, o := range opts {
				if o == "ro" {
					opts[j] = "rw"
				}
			}
			s.Mounts[i].Options = opts
		}
		hostDevs, err := devices("/dev")
		if err != nil {
			return fmt.Errorf("list host devices for a privileged container: %w", err)
		}
		// CRI devices already added keep their container paths; host devices
		// appear at their host paths.
		have := make(map[string]bool, len(s.Linux.Devices))
		for _, d := range s.Linux.Devices {
			have[d.Path] = true
		}
		for _, d := range hostDevs {
			if !have[d.Path] {
				s.Linux.Devices = append(s.Linux.Devices, d)
			}
		}
		s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
		return nil
	}
}

// WithMaskedPaths replaces the masked paths when the CRI config lists any.
// An empty list keeps the defaults: over CRI an empty list cannot be told
// from an absent one, and masking is the safe reading. The paths are
// checked by ValidateContainer.
func WithMaskedPaths(paths []string) Opt {
	return func(s *specs.Spec) error {
		if len(paths) == 0 {
			return nil
		}
		ensureLinux(s)
		s.Linux.MaskedPaths = slices.Clone(paths)
		return nil
	}
}

// WithReadonlyPaths is WithMaskedPaths for read-only paths.
func WithReadonlyPaths(paths []string) Opt {
	return func(s *specs.Spec) error {
		if len(paths) == 0 {
			return nil
		}
		ensureLinux(s)
		s.Linux.ReadonlyPaths = slices.Clone(paths)
		return nil
	}
}

func checkAbsList(field string, paths []string) error {
	for i, p := range paths {
		if !isAbs(p) {
			return errdefs.Invalid(fmt.Sprintf("%s[%d] %q must be an absolute path", field, i, p))
		}
	}
	return nil
}

// WithNoNewPrivileges sets no_new_privileges when asked (kubelet asks when
// allowPrivilegeEscalation is false). It is never cleared once set.
func WithNoNewPrivileges(on bool) Opt {
	return func(s *specs.Spec) error {
		ensureProcess(s)
		s.Process.NoNewPrivileges = s.Process.NoNewPrivileges || on
		return nil
	}
}

// WithReadonlyRootfs makes the root filesystem read-only when asked.
func WithReadonlyRootfs(on bool) Opt {
	return func(s *specs.Spec) error {
		if s.Root == nil {
			s.Root = &specs.Root{Path: defaultRootfsPathInSpecs}
		}
		s.Root.Readonly = s.Root.Readonly || on
		return nil
	}
}

// WithSysctls sets sysctls, checked and in dotted form (Pod.Sysctls).
func WithSysctls(sysctls map[string]string) Opt {
	return func(s *specs.Spec) error {
		if len(sysctls) == 0 {
			return nil
		}
		ensureLinux(s)
		if s.Linux.Sysctl == nil {
			s.Linux.Sysctl = make(map[string]string, len(sysctls))
		}
		maps.Copy(s.Linux.Sysctl, sysctls)
		return nil
	}
}

// sysctlKey writes a sysctl in dotted form; "net/ipv4/ip_forward" and
// "net.ipv4.ip_forward" are the same setting.
func sysctlKey(k string) string {
	if strings.Contains(k, "/") && !strings.Contains(k, ".") {
		return strings.ReplaceAll(k, "/", ".")
	}
	return k
}

// checkSysctls accepts only sysctls confined to a namespace the pod owns:
// IPC ones (kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*) unless the
// pod uses host IPC, and net.* unless it uses host network. Values with '+'
// or '=' are refused: they could smuggle a second setting into runtimes
// that parse "key=value" lists (CVE-2022-0811). It returns them in dotted
// form.
func checkSysctls(cfg *runtimeapi.PodSandboxConfig) (map[string]string, error) {
	ns := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	hostNet := ns.GetNetwork() == runtimeapi.NamespaceMode_NODE
	hostIPC := ns.GetIpc() == runtimeapi.NamespaceMode_NODE
	out := dottedSysctls(cfg.GetLinux().GetSysctls())
	for k, v := range cfg.GetLinux().GetSysctls() {
		field := fmt.Sprintf("linux.sysctls[%q]", k)
		if strings.ContainsAny(v, "+=") || strings.ContainsFunc(v, func(r rune) bool { return r < ' ' && r != '\t' }) {
			return nil, errdefs.Invalid(fmt.Sprintf("%s: value %q must not contain '+', '=' or control characters", field, v))
		}
		key := sysctlKey(k)
		if key == "" || strings.Contains(key, "..") || strings.ContainsAny(key, "/ \t\n") {
			return nil, errdefs.Invalid(field + ": malformed sysctl name")
		}
		switch {
		case key == "kernel.sem" || strings.HasPrefix(key, "kernel.shm") ||
			strings.HasPrefix(key, "kernel.msg") || strings.HasPrefix(key, "fs.mqueue."):
			if hostIPC {
				return nil, errdefs.Invalid(field + ": IPC sysctls are not allowed in a pod that uses the host IPC namespace")
			}
		case strings.HasPrefix(key, "net."):
			if hostNet {
				return nil, errdefs.Invalid(field + ": net.* sysctls are not allowed in a pod that uses the host network")
			}
		default:
			return nil, errdefs.Invalid(field + ": not a namespaced sysctl (allowed: kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*, net.*)")
		}
	}
	return out, nil
}

func dottedSysctls(in map[string]string) map[string]string {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[sysctlKey(k)] = v
	}
	return out
}

// profileFromLegacy reads the deprecated string form of a profile:
// "runtime/default", "docker/default", "unconfined", "localhost/<ref>".
func profileFromLegacy(field, p string) (*runtimeapi.SecurityProfile, error) {
	switch {
	case p == "":
		return nil, nil
	case p == "runtime/default" || p == "docker/default":
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, nil
	case p == "unconfined":
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, nil
	case strings.HasPrefix(p, "localhost/"):
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: strings.TrimPrefix(p, "localhost/")}, nil
	default:
		return nil, errdefs.Invalid(fmt.Sprintf("%s %q: expected runtime/default, unconfined or localhost/<profile>", field, p))
	}
}

// seccompProfileFrom prefers the structured field over the legacy path.
func seccompProfileFrom(sp *runtimeapi.SecurityProfile, legacy string) (*runtimeapi.SecurityProfile, error) {
	if sp != nil {
		return sp, nil
	}
	return profileFromLegacy("linux.security_context.seccomp_profile_path", legacy)
}

// Seccomp is a checked seccomp choice: no filter, moby's default profile,
// or a JSON profile file on the node (read at validation). The zero value
// is the default profile, the safe reading of a choice nobody made.
type Seccomp struct {
	Type    runtimeapi.SecurityProfile_ProfileType // Unconfined means no filter
	Path    string                                 // Localhost: the profile file
	Profile []byte                                 // Localhost: its content
}

// resolveSeccomp checks a seccomp profile and, for Localhost, reads it from
// the node (unless readFile is nil). A nil profile sets no filter.
func resolveSeccomp(p *runtimeapi.SecurityProfile, readFile func(string) ([]byte, error)) (Seccomp, error) {
	const field = "linux.security_context.seccomp"
	if p == nil {
		return Seccomp{Type: runtimeapi.SecurityProfile_Unconfined}, nil
	}
	if p.GetProfileType() != runtimeapi.SecurityProfile_Localhost && p.GetLocalhostRef() != "" {
		return Seccomp{}, errdefs.Invalid(field + ".localhost_ref is only allowed with profile_type Localhost")
	}
	switch p.GetProfileType() {
	case runtimeapi.SecurityProfile_Unconfined, runtimeapi.SecurityProfile_RuntimeDefault:
		return Seccomp{Type: p.GetProfileType()}, nil
	case runtimeapi.SecurityProfile_Localhost:
		ref := strings.TrimPrefix(p.GetLocalhostRef(), "localhost/")
		if !isAbs(ref) {
			return Seccomp{}, errdefs.Invalid(fmt.Sprintf("%s.localhost_ref %q must be an absolute path to a profile on the node", field, p.GetLocalhostRef()))
		}
		if readFile == nil {
			return Seccomp{Type: runtimeapi.SecurityProfile_Localhost, Path: ref}, nil
		}
		body, err := readFile(ref)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return Seccomp{}, errdefs.Invalid(fmt.Sprintf("%s.localhost_ref: seccomp profile %s does not exist on this node", field, ref))
			}
			return Seccomp{}, fmt.Errorf("read seccomp profile %s: %w", ref, err)
		}
		return Seccomp{Type: runtimeapi.SecurityProfile_Localhost, Path: ref, Profile: body}, nil
	default:
		return Seccomp{}, errdefs.Invalid(fmt.Sprintf("%s.profile_type: unknown type %d", field, p.GetProfileType()))
	}
}

// WithSeccomp applies a seccomp choice: RuntimeDefault is moby's default
// profile (filtered by the spec's capabilities, so apply it after them);
// Localhost is the profile read at validation, filtered the same way.
func WithSeccomp(p Seccomp) Opt {
	return func(s *specs.Spec) error {
		ensureLinux(s)
		s.Linux.Seccomp = nil
		switch p.Type {
		case runtimeapi.SecurityProfile_RuntimeDefault:
			ensureCaps(s)
			prof, err := seccomp.GetDefaultProfile(s)
			if err != nil {
				return fmt.Errorf("build the default seccomp profile: %w", err)
			}
			s.Linux.Seccomp = prof
		case runtimeapi.SecurityProfile_Localhost:
			ensureCaps(s)
			prof, err := seccomp.LoadProfile(string(p.Profile), s)
			if err != nil {
				return errdefs.Invalid(fmt.Sprintf("linux.security_context.seccomp.localhost_ref: seccomp profile %s: %v", p.Path, err))
			}
			s.Linux.Seccomp = prof
		}
		return nil
	}
}

// appArmorProfile is the container's AppArmor profile from the
// structured field or the legacy string.
func appArmorProfile(sc *runtimeapi.LinuxContainerSecurityContext) (*runtimeapi.SecurityProfile, error) {
	if sc.GetApparmor() != nil {
		return sc.GetApparmor(), nil
	}
	return profileFromLegacy("linux.security_context.apparmor_profile", sc.GetApparmorProfile())
}

// resolveAppArmor decides the AppArmor profile a container runs under ("":
// none). On a host without AppArmor any profile but Unconfined is refused
// rather than silently not enforced. RuntimeDefault (also used when none is
// named) is the daemon's loaded default profile; privileged containers get
// none unless they name one.
func resolveAppArmor(p *runtimeapi.SecurityProfile, privileged, enabled bool, defaultProfile string) (string, error) {
	const field = "linux.security_context.apparmor"
	if p != nil && p.GetProfileType() != runtimeapi.SecurityProfile_Localhost && p.GetLocalhostRef() != "" {
		return "", errdefs.Invalid(field + ".localhost_ref is only allowed with profile_type Localhost")
	}
	if !enabled {
		if p != nil && p.GetProfileType() != runtimeapi.SecurityProfile_Unconfined {
			return "", errdefs.Invalid(field + ": AppArmor is not enabled on this node")
		}
		return "", nil
	}
	if p == nil {
		p = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	}
	switch p.GetProfileType() {
	case runtimeapi.SecurityProfile_Unconfined:
		return "", nil
	case runtimeapi.SecurityProfile_RuntimeDefault:
		if privileged {
			return "", nil
		}
		if defaultProfile == "" {
			// Running unconfined instead would be a silent downgrade.
			return "", errdefs.Precondition(field + ": AppArmor is enabled on this node but berth's default profile is not loaded (berthd logs why at start; is apparmor_parser installed?)")
		}
		return defaultProfile, nil
	case runtimeapi.SecurityProfile_Localhost:
		name := strings.TrimPrefix(p.GetLocalhostRef(), "localhost/")
		if name == "" {
			return "", errdefs.Invalid(field + ".localhost_ref: profile name is empty")
		}
		return name, nil
	default:
		return "", errdefs.Invalid(fmt.Sprintf("%s.profile_type: unknown type %d", field, p.GetProfileType()))
	}
}

// WithAppArmor runs the process under the named AppArmor profile ("": none).
func WithAppArmor(profile string) Opt {
	return func(s *specs.Spec) error {
		ensureProcess(s)
		s.Process.ApparmorProfile = profile
		return nil
	}
}

// CheckSELinux decides on CRI selinux_options. berth does not label
// processes or mounts for SELinux, so on a host that enforces SELinux a
// request for labels is refused (FailedPrecondition) rather than run
// unlabelled. On a host without SELinux labels have no effect, and they are
// accepted as containerd and CRI-O accept them there (kubelet sends a pod's
// seLinuxOptions whatever the node); callers log that they were ignored.
func CheckSELinux(field string, o *runtimeapi.SELinuxOption, enabled bool) error {
	if !enabled || !SELinuxRequested(o) {
		return nil
	}
	return errdefs.Precondition(fmt.Sprintf("%s: this node enforces SELinux, and berth does not apply SELinux labels; "+
		"run the pod on a node without SELinux or drop seLinuxOptions (asked for user %q role %q type %q level %q)",
		field, o.GetUser(), o.GetRole(), o.GetType(), o.GetLevel()))
}

// SELinuxRequested says whether o asks for any label.
func SELinuxRequested(o *runtimeapi.SELinuxOption) bool {
	return o.GetUser() != "" || o.GetRole() != "" || o.GetType() != "" || o.GetLevel() != ""
}
