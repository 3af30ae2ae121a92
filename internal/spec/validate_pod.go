package spec

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

// Pod is a RunPodSandbox config checked once, by ValidatePod. Containers of
// the pod are built from it without checking the pod again.
type Pod struct {
	// Config is the request as given (metadata, hostname, annotations...).
	Config *runtimeapi.PodSandboxConfig
	// Network and IPC are POD or NODE; PID is the pod's PID mode.
	Network, IPC, PID runtimeapi.NamespaceMode
	Privileged        bool
	// Sysctls are namespaced ones, keys in dotted form.
	Sysctls map[string]string
	// PauseSeccomp is the pause process's profile: the pod's Localhost
	// profile (read when the pause process is made), else RuntimeDefault.
	PauseSeccomp Seccomp
	// UserNS is the pod's user namespace (userns_options mode POD); nil:
	// the host's.
	UserNS *UserNS
}

// UserNS is a pod's user namespace: one uid and one gid mapping, each
// mapping container id 0 (as kubelet sends them).
type UserNS struct {
	UIDs, GIDs []specs.LinuxIDMapping
}

// RootUID and RootGID are the host ids of the pod's root.
func (u *UserNS) RootUID() uint32 { return u.UIDs[0].HostID }
func (u *UserNS) RootGID() uint32 { return u.GIDs[0].HostID }

// checkUserNS checks a pod's userns_options: NODE (or none) is the host's
// user namespace; POD needs a handler that supports user namespaces, the
// pod's own network, IPC and PID namespaces, and one mapping each for
// uids and gids with container id 0 mapped to a non-root host range.
func checkUserNS(ns *runtimeapi.NamespaceOption, host *HostConfig) error {
	const field = "linux.security_context.namespace_options.userns_options"
	u := ns.GetUsernsOptions()
	if u == nil {
		return nil
	}
	switch u.GetMode() {
	case runtimeapi.NamespaceMode_NODE:
		if len(u.GetUids()) > 0 || len(u.GetGids()) > 0 {
			return errdefs.Invalid(field + ": mode NODE takes no uid or gid mappings")
		}
		return nil
	case runtimeapi.NamespaceMode_POD:
	case runtimeapi.NamespaceMode_CONTAINER, runtimeapi.NamespaceMode_TARGET:
		return errdefs.Invalid(fmt.Sprintf("%s.mode %s is not supported: a pod runs in its own user namespace (POD) or the host's (NODE)", field, u.GetMode()))
	default:
		return errdefs.Invalid(fmt.Sprintf("%s.mode: unknown mode %d", field, u.GetMode()))
	}
	if !host.UserNamespaces {
		return errdefs.Precondition(field + ".mode POD: the pod's runtime handler does not support user namespaces (see Status.runtime_handlers)")
	}
	if ns.GetNetwork() == runtimeapi.NamespaceMode_NODE || ns.GetIpc() == runtimeapi.NamespaceMode_NODE || ns.GetPid() == runtimeapi.NamespaceMode_NODE {
		return errdefs.Invalid(field + ".mode POD: a pod in a user namespace cannot use the host's network, IPC or PID namespace")
	}
	for _, f := range []struct {
		name string
		m    []*runtimeapi.IDMapping
	}{{"uids", u.GetUids()}, {"gids", u.GetGids()}} {
		if len(f.m) != 1 {
			return errdefs.Invalid(fmt.Sprintf("%s.%s: want exactly one mapping, got %d", field, f.name, len(f.m)))
		}
		m := f.m[0]
		switch {
		case m.GetContainerId() != 0:
			return errdefs.Invalid(fmt.Sprintf("%s.%s: the mapping must start at container id 0, got %d", field, f.name, m.GetContainerId()))
		case m.GetLength() == 0:
			return errdefs.Invalid(fmt.Sprintf("%s.%s: the mapping's length is 0", field, f.name))
		case m.GetHostId() == 0:
			return errdefs.Invalid(fmt.Sprintf("%s.%s: host id 0 would make the pod's root the host's root", field, f.name))
		case uint64(m.GetHostId())+uint64(m.GetLength()) > 1<<32-1:
			return errdefs.Invalid(fmt.Sprintf("%s.%s: host ids %d+%d overflow", field, f.name, m.GetHostId(), m.GetLength()))
		}
	}
	return nil
}

func userNSFrom(ns *runtimeapi.NamespaceOption) *UserNS {
	u := ns.GetUsernsOptions()
	if u == nil || u.GetMode() != runtimeapi.NamespaceMode_POD || len(u.GetUids()) == 0 || len(u.GetGids()) == 0 {
		return nil
	}
	conv := func(in []*runtimeapi.IDMapping) []specs.LinuxIDMapping {
		out := make([]specs.LinuxIDMapping, len(in))
		for i, m := range in {
			out[i] = specs.LinuxIDMapping{ContainerID: m.GetContainerId(), HostID: m.GetHostId(), Size: m.GetLength()}
		}
		return out
	}
	return &UserNS{UIDs: conv(u.GetUids()), GIDs: conv(u.GetGids())}
}

// RFC 1123 hostname: dot-separated labels of letters, digits and dashes.
var hostnameRE = regexp.MustCompile(`^[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)*$`)

// ValidatePod checks a pod config before anything is made. host gives the
// node's SELinux state and the handler's user namespace support.
func ValidatePod(cfg *runtimeapi.PodSandboxConfig, host *HostConfig) (*Pod, error) {
	if cfg == nil {
		return nil, errdefs.Invalid("config is required")
	}
	md := cfg.GetMetadata()
	if md == nil {
		return nil, errdefs.Invalid("config.metadata is required")
	}
	for _, f := range []struct{ field, v string }{{"name", md.GetName()}, {"namespace", md.GetNamespace()}, {"uid", md.GetUid()}} {
		if f.v == "" {
			return nil, errdefs.Invalid(fmt.Sprintf("config.metadata.%s is required", f.field))
		}
	}
	if h := cfg.GetHostname(); h != "" && (len(h) > 253 || !hostnameRE.MatchString(h)) {
		return nil, errdefs.Invalid(fmt.Sprintf("config.hostname %q is not a valid host name", h))
	}
	if d := cfg.GetLogDirectory(); strings.ContainsRune(d, 0) {
		return nil, errdefs.Invalid("config.log_directory contains a NUL byte")
	}
	if d := cfg.GetLogDirectory(); d != "" && !filepath.IsAbs(d) {
		return nil, errdefs.Invalid(fmt.Sprintf("config.log_directory %q must be an absolute path", d))
	}
	if err := checkDNS(cfg.GetDnsConfig()); err != nil {
		return nil, errdefs.Invalid("config." + err.Error())
	}
	// Sysctls are checked here, before anything exists (CVE-2022-0811).
	if _, err := checkSysctls(cfg); err != nil {
		return nil, err
	}
	if p := cfg.GetLinux().GetCgroupParent(); p != "" && !filepath.IsAbs(p) && filepath.Ext(p) != ".slice" {
		return nil, errdefs.Invalid(fmt.Sprintf("config.linux.cgroup_parent %q must be an absolute cgroupfs path or a systemd slice", p))
	}
	sc := cfg.GetLinux().GetSecurityContext()
	if err := CheckSELinux("linux.security_context.selinux_options", sc.GetSelinuxOptions(), host.SELinuxEnabled); err != nil {
		return nil, err
	}
	if err := checkPodNamespaces(sc.GetNamespaceOptions()); err != nil {
		return nil, err
	}
	if err := checkUserNS(sc.GetNamespaceOptions(), host); err != nil {
		return nil, err
	}
	sp, err := seccompProfileFrom(sc.GetSeccomp(), sc.GetSeccompProfilePath())
	if err != nil {
		return nil, err
	}
	if sp.GetProfileType() == runtimeapi.SecurityProfile_Localhost {
		if _, err := resolveSeccomp(sp, nil); err != nil {
			return nil, err
		}
	}
	return ValidatedPod(cfg), nil
}

// ValidatedPod is the Pod of a config ValidatePod accepted before (a pod's
// stored config). It checks nothing.
func ValidatedPod(cfg *runtimeapi.PodSandboxConfig) *Pod {
	sc := cfg.GetLinux().GetSecurityContext()
	ns := sc.GetNamespaceOptions()
	p := &Pod{
		Config:       cfg,
		Network:      ns.GetNetwork(),
		IPC:          ns.GetIpc(),
		PID:          ns.GetPid(),
		Privileged:   sc.GetPrivileged(),
		Sysctls:      dottedSysctls(cfg.GetLinux().GetSysctls()),
		PauseSeccomp: Seccomp{Type: runtimeapi.SecurityProfile_RuntimeDefault},
		UserNS:       userNSFrom(ns),
	}
	// The pause process needs no syscall beyond the default profile, so it
	// always gets one: the pod's own Localhost profile, else RuntimeDefault
	// (even for pods that ask for Unconfined, which is meant for their
	// containers).
	if sp, err := seccompProfileFrom(sc.GetSeccomp(), sc.GetSeccompProfilePath()); err == nil && sp.GetProfileType() == runtimeapi.SecurityProfile_Localhost {
		p.PauseSeccomp = Seccomp{Type: runtimeapi.SecurityProfile_Localhost, Path: strings.TrimPrefix(sp.GetLocalhostRef(), "localhost/")}
	}
	return p
}

// checkDNS rejects values that would inject extra lines into resolv.conf.
func checkDNS(dns *runtimeapi.DNSConfig) error {
	check := func(field string, vals []string) error {
		for _, v := range vals {
			if v == "" || strings.ContainsAny(v, "\n\r\x00") {
				return fmt.Errorf("dns_config.%s: invalid value %q", field, v)
			}
		}
		return nil
	}
	if err := check("servers", dns.GetServers()); err != nil {
		return err
	}
	if err := check("searches", dns.GetSearches()); err != nil {
		return err
	}
	return check("options", dns.GetOptions())
}
