package spec

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

// ValidateContainerConfig checks what CreateContainer can check before any
// work: required fields, path shapes, enum values and value ranges. It
// touches nothing on the host. logDir is the pod's log_directory. Errors
// are errdefs.ErrInvalidArgument and name the field.
func ValidateContainerConfig(cfg *runtimeapi.ContainerConfig, logDir string) error {
	if cfg == nil {
		return errdefs.Invalid("container config is required")
	}
	if cfg.GetMetadata().GetName() == "" {
		return errdefs.Invalid("metadata.name is required")
	}
	if cfg.GetImage().GetImage() == "" {
		return errdefs.Invalid("image.image is required")
	}
	if lp := cfg.GetLogPath(); lp != "" {
		if logDir == "" {
			return errdefs.Invalid("log_path is set but the pod sandbox has no log_directory")
		}
		if !filepath.IsAbs(logDir) {
			return errdefs.Invalid(fmt.Sprintf("pod log_directory %q must be an absolute path", logDir))
		}
		// The log path is joined to the pod's log directory; it must stay inside.
		if !filepath.IsLocal(lp) {
			return errdefs.Invalid(fmt.Sprintf("log_path %q must be a relative path inside the pod's log directory", lp))
		}
	}
	if wd := cfg.GetWorkingDir(); wd != "" && !isAbs(wd) {
		return errdefs.Invalid(fmt.Sprintf("working_dir %q must be an absolute path", wd))
	}
	for i, a := range append(append([]string(nil), cfg.GetCommand()...), cfg.GetArgs()...) {
		if strings.ContainsRune(a, 0) {
			return errdefs.Invalid(fmt.Sprintf("command/args[%d] contains a NUL byte", i))
		}
	}
	for i, kv := range cfg.GetEnvs() {
		k := kv.GetKey()
		if k == "" || strings.ContainsAny(k, "=\x00") || bytes.IndexByte(kv.GetValue(), 0) >= 0 {
			return errdefs.Invalid(fmt.Sprintf("envs[%d]: key %q must be non-empty without '=' or NUL, value without NUL", i, k))
		}
	}
	for i, m := range cfg.GetMounts() {
		if m == nil {
			return errdefs.Invalid(fmt.Sprintf("mounts[%d] is empty", i))
		}
		// Host facts (existence, rro support) are checked at spec generation.
		if _, err := bindMount(i, m, MountOptions{RecursiveReadOnlyMounts: true}); err != nil {
			return err
		}
	}
	if err := WithCRIDevices(cfg.GetDevices(), func(string) ([]specs.LinuxDevice, error) {
		return []specs.LinuxDevice{{}}, nil
	})(&specs.Spec{}); err != nil {
		return err
	}
	if sig := cfg.GetStopSignal(); sig != runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT {
		if _, err := signalFromCRI(sig); err != nil {
			return err
		}
	}
	if err := validateResources(cfg.GetLinux().GetResources()); err != nil {
		return err
	}
	return validateSecurityContext(cfg.GetLinux().GetSecurityContext())
}

func validateResources(r *runtimeapi.LinuxContainerResources) error {
	if r == nil {
		return nil
	}
	const field = "linux.resources"
	for name, v := range map[string]int64{
		"cpu_period":                 r.GetCpuPeriod(),
		"cpu_shares":                 r.GetCpuShares(),
		"memory_limit_in_bytes":      r.GetMemoryLimitInBytes(),
		"memory_swap_limit_in_bytes": r.GetMemorySwapLimitInBytes(),
	} {
		if v < 0 {
			return errdefs.Invalid(fmt.Sprintf("%s.%s %d must not be negative", field, name, v))
		}
	}
	if q := r.GetCpuQuota(); q < -1 {
		return errdefs.Invalid(fmt.Sprintf("%s.cpu_quota %d must be -1 (no limit) or more", field, q))
	}
	// The kernel's CFS bounds: runc would fail later with a vaguer message.
	if p := r.GetCpuPeriod(); p != 0 && (p < 1000 || p > 1000000) {
		return errdefs.Invalid(fmt.Sprintf("%s.cpu_period %d must be between 1000 and 1000000 microseconds", field, p))
	}
	if q := r.GetCpuQuota(); q > 0 && q < 1000 {
		return errdefs.Invalid(fmt.Sprintf("%s.cpu_quota %d must be at least 1000 microseconds", field, q))
	}
	if sh := r.GetCpuShares(); sh > 262144 {
		return errdefs.Invalid(fmt.Sprintf("%s.cpu_shares %d is above the kernel's 262144", field, sh))
	}
	if adj := r.GetOomScoreAdj(); adj < -1000 || adj > 1000 {
		return errdefs.Invalid(fmt.Sprintf("%s.oom_score_adj %d is outside [-1000, 1000]", field, adj))
	}
	for i, h := range r.GetHugepageLimits() {
		if h.GetPageSize() == "" {
			return errdefs.Invalid(fmt.Sprintf("%s.hugepage_limits[%d].page_size is required", field, i))
		}
	}
	for k := range r.GetUnified() {
		if k == "" || strings.ContainsAny(k, "/\x00") || strings.Contains(k, "..") {
			return errdefs.Invalid(fmt.Sprintf("%s.unified: %q is not a cgroup file name", field, k))
		}
	}
	return nil
}

func validateSecurityContext(sc *runtimeapi.LinuxContainerSecurityContext) error {
	if sc == nil {
		return nil
	}
	const field = "linux.security_context"
	if _, err := userString(sc, ""); err != nil {
		return err
	}
	if u := sc.GetRunAsUser(); u != nil && (u.GetValue() < 0 || u.GetValue() > int64(^uint32(0))) {
		return errdefs.Invalid(fmt.Sprintf("%s.run_as_user %d is not a valid uid", field, u.GetValue()))
	}
	if g := sc.GetRunAsGroup(); g != nil && (g.GetValue() < 0 || g.GetValue() > int64(^uint32(0))) {
		return errdefs.Invalid(fmt.Sprintf("%s.run_as_group %d is not a valid gid", field, g.GetValue()))
	}
	if strings.ContainsAny(sc.GetRunAsUsername(), ":\x00") {
		return errdefs.Invalid(fmt.Sprintf("%s.run_as_username %q must not contain ':'", field, sc.GetRunAsUsername()))
	}
	if err := WithSupplementalGroups(sc.GetSupplementalGroups())(&specs.Spec{}); err != nil {
		return err
	}
	switch p := sc.GetSupplementalGroupsPolicy(); p {
	case runtimeapi.SupplementalGroupsPolicy_Merge, runtimeapi.SupplementalGroupsPolicy_Strict:
	default:
		return errdefs.Invalid(fmt.Sprintf("%s.supplemental_groups_policy: unknown policy %d", field, p))
	}
	// Capability names only (against every capability Linux knows); whether
	// the node can grant them is checked at spec generation.
	if err := WithCapabilities(nil, sc.GetCapabilities(), capNames)(&specs.Spec{}); err != nil {
		return err
	}
	if err := checkAbsList(field+".masked_paths", sc.GetMaskedPaths()); err != nil {
		return err
	}
	if err := checkAbsList(field+".readonly_paths", sc.GetReadonlyPaths()); err != nil {
		return err
	}
	sp, err := seccompProfile(sc, false)
	if err != nil {
		return err
	}
	if sp != nil && sp.GetProfileType() != runtimeapi.SecurityProfile_Localhost && sp.GetLocalhostRef() != "" {
		return errdefs.Invalid(field + ".seccomp.localhost_ref is only allowed with profile_type Localhost")
	}
	if sp.GetProfileType() == runtimeapi.SecurityProfile_Localhost && !isAbs(strings.TrimPrefix(sp.GetLocalhostRef(), "localhost/")) {
		return errdefs.Invalid(fmt.Sprintf("%s.seccomp.localhost_ref %q must be an absolute path to a profile on the node", field, sp.GetLocalhostRef()))
	}
	ap, err := appArmorProfile(sc)
	if err != nil {
		return err
	}
	if ap != nil && ap.GetProfileType() != runtimeapi.SecurityProfile_Localhost && ap.GetLocalhostRef() != "" {
		return errdefs.Invalid(field + ".apparmor.localhost_ref is only allowed with profile_type Localhost")
	}
	return nil
}
