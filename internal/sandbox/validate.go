package sandbox

import (
	"fmt"
	"path/filepath"
	"regexp"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/spec"
)

// RFC 1123 hostname: dot-separated labels of letters, digits and dashes.
var hostnameRE = regexp.MustCompile(`^[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)*$`)

// Validate checks a pod config before anything is made.
func Validate(cfg *runtimeapi.PodSandboxConfig) error {
	if cfg == nil {
		return errdefs.Invalid("config is required")
	}
	md := cfg.GetMetadata()
	if md == nil {
		return errdefs.Invalid("config.metadata is required")
	}
	for field, v := range map[string]string{"name": md.GetName(), "namespace": md.GetNamespace(), "uid": md.GetUid()} {
		if v == "" {
			return errdefs.Invalid(fmt.Sprintf("config.metadata.%s is required", field))
		}
	}
	if h := cfg.GetHostname(); h != "" && (len(h) > 253 || !hostnameRE.MatchString(h)) {
		return errdefs.Invalid(fmt.Sprintf("config.hostname %q is not a valid host name", h))
	}
	if d := cfg.GetLogDirectory(); d != "" && !filepath.IsAbs(d) {
		return errdefs.Invalid(fmt.Sprintf("config.log_directory %q must be an absolute path", d))
	}
	if err := validateDNS(cfg.GetDnsConfig()); err != nil {
		return errdefs.Invalid("config." + err.Error())
	}
	// Sysctls are checked here, before anything exists (CVE-2022-0811).
	if err := spec.ValidatePodSysctls(cfg); err != nil {
		return err
	}
	if p := cfg.GetLinux().GetCgroupParent(); p != "" && !filepath.IsAbs(p) && filepath.Ext(p) != ".slice" {
		return errdefs.Invalid(fmt.Sprintf("config.linux.cgroup_parent %q must be an absolute cgroupfs path or a systemd slice", p))
	}
	return nil
}
