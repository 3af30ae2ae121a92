package spec

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

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
}

// RFC 1123 hostname: dot-separated labels of letters, digits and dashes.
var hostnameRE = regexp.MustCompile(`^[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)*$`)

// ValidatePod checks a pod config before anything is made. host gives the
// node's SELinux state.
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
