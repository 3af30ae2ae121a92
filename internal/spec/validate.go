package spec

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

// Container is a CreateContainer request checked once, at the edge, by
// ValidateContainer: GenerateContainer builds its spec from it without
// checking again. What is left to fail at generation is what depends on
// the image (its USER, /etc/passwd, entrypoint) or on the pod's state.
type Container struct {
	// Config is the request as given, for what needs no checking
	// (command, env, labels...).
	Config *runtimeapi.ContainerConfig
	Pod    *Pod
	// LogPath is where the container's log goes, inside the pod's log
	// directory; "" for no log.
	LogPath string
	// StopSignal names the config's stop_signal ("" when it names none).
	StopSignal string

	User               User
	SupplementalGroups []uint32
	MergeImageGroups   bool // supplemental_groups_policy Merge
	Privileged         bool
	Capabilities       Capabilities
	// Mounts are the CRI bind mounts, checked against the host. Those of
	// ImageVolumes have their source filled in at generation.
	Mounts            []specs.Mount
	ImageVolumes      []ImageVolume
	RootfsPropagation string
	Devices           []Device
	// Resources are checked (ranges, cgroup file names).
	Resources                  *runtimeapi.LinuxContainerResources
	MaskedPaths, ReadonlyPaths []string // nil: the defaults
	// PIDMode is the PID namespace the container gets (the host's in a
	// host-PID pod).
	PIDMode  runtimeapi.NamespaceMode
	Seccomp  Seccomp
	AppArmor string // profile name; "" for none
}

// ValidateContainer checks a CRI container config for a pod, once, before
// anything is made: required fields, path shapes, enum values, value
// ranges, and against the host (mount sources and their propagation,
// devices, capabilities berthd can grant, seccomp profile files, AppArmor
// and SELinux). Errors a caller can fix are errdefs.ErrInvalidArgument (or
// FailedPrecondition for what the node cannot do) and name the field.
func ValidateContainer(cfg *runtimeapi.ContainerConfig, pod *Pod, host *HostConfig) (*Container, error) {
	if cfg == nil {
		return nil, errdefs.Invalid("config is required")
	}
	if cfg.GetMetadata().GetName() == "" {
		return nil, errdefs.Invalid("config.metadata.name is required")
	}
	if cfg.GetImage().GetImage() == "" {
		return nil, errdefs.Invalid("config.image.image is required")
	}
	if pod == nil || pod.Config == nil {
		return nil, errdefs.Invalid("sandbox config is required")
	}
	c := &Container{Config: cfg, Pod: pod, Resources: cfg.GetLinux().GetResources()}
	if lp := cfg.GetLogPath(); lp != "" {
		logDir := pod.Config.GetLogDirectory()
		if logDir == "" {
			return nil, errdefs.Invalid("log_path is set but the pod sandbox has no log_directory")
		}
		if strings.ContainsRune(lp, 0) {
			return nil, errdefs.Invalid("log_path contains a NUL byte")
		}
		// The log path is joined to the pod's log directory; it must stay inside.
		if !filepath.IsLocal(lp) {
			return nil, errdefs.Invalid(fmt.Sprintf("log_path %q must be a relative path inside the pod's log directory", lp))
		}
		c.LogPath = filepath.Join(logDir, lp)
	}
	if wd := cfg.GetWorkingDir(); wd != "" && !isAbs(wd) {
		return nil, errdefs.Invalid(fmt.Sprintf("working_dir %q must be an absolute path", wd))
	}
	for i, a := range append(append([]string(nil), cfg.GetCommand()...), cfg.GetArgs()...) {
		if strings.ContainsRune(a, 0) {
			return nil, errdefs.Invalid(fmt.Sprintf("command/args[%d] contains a NUL byte", i))
		}
	}
	for i, kv := range cfg.GetEnvs() {
		k := kv.GetKey()
		if k == "" || strings.ContainsAny(k, "=\x00") || bytes.IndexByte(kv.GetValue(), 0) >= 0 {
			return nil, errdefs.Invalid(fmt.Sprintf("envs[%d]: key %q must be non-empty without '=' or NUL, value without NUL", i, k))
		}
	}
	var err error
	if c.Mounts, c.ImageVolumes, c.RootfsPropagation, err = bindMounts(cfg.GetMounts(), MountOptions{
		Stat:                    host.fs().Stat,
		RecursiveReadOnlyMounts: host.RecursiveReadOnlyMounts,
		Propagation:             host.propagation(),
		Accepted:                host.MountOptions,
	}); err != nil {
		return nil, err
	}
	if c.Devices, err = resolveDevices(cfg.GetDevices(), host.fs().Devices); err != nil {
		return nil, err
	}
	if sig := cfg.GetStopSignal(); sig != runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT {
		s, err := SignalFromCRI(sig)
		if err != nil {
			return nil, err
		}
		// Kept by name, as Docker and containerd keep it; real-time
		// signals have no name here.
		if c.StopSignal = unix.SignalName(s); c.StopSignal == "" {
			c.StopSignal = strconv.Itoa(int(s))
		}
	}
	if err := checkResources(c.Resources); err != nil {
		return nil, err
	}
	if err := c.checkSecurityContext(host); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Container) checkSecurityContext(host *HostConfig) error {
	const field = "linux.security_context"
	sc := c.Config.GetLinux().GetSecurityContext()
	var err error
	if c.User, err = parseUser(sc); err != nil {
		return err
	}
	if c.SupplementalGroups, err = supplementalGroups(sc.GetSupplementalGroups()); err != nil {
		return err
	}
	switch p := sc.GetSupplementalGroupsPolicy(); p {
	case runtimeapi.SupplementalGroupsPolicy_Merge:
		c.MergeImageGroups = true
	case runtimeapi.SupplementalGroupsPolicy_Strict:
	default:
		return errdefs.Invalid(fmt.Sprintf("%s.supplemental_groups_policy: unknown policy %d", field, p))
	}
	if c.Capabilities, err = resolveCapabilities(host.defaultCaps(), sc.GetCapabilities(), host.AllCapabilities); err != nil {
		return err
	}
	if err := checkAbsList(field+".masked_paths", sc.GetMaskedPaths()); err != nil {
		return err
	}
	if err := checkAbsList(field+".readonly_paths", sc.GetReadonlyPaths()); err != nil {
		return err
	}
	c.MaskedPaths, c.ReadonlyPaths = sc.GetMaskedPaths(), sc.GetReadonlyPaths()
	c.Privileged = sc.GetPrivileged()
	if c.Privileged && !c.Pod.Privileged {
		return errdefs.Invalid(field + ".privileged: a privileged container needs a privileged pod sandbox")
	}
	sp, err := seccompProfileFrom(sc.GetSeccomp(), sc.GetSeccompProfilePath())
	if err != nil {
		return err
	}
	if sp == nil && host.SeccompDefaultWhenUnset {
		sp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	}
	readFile := host.fs().ReadFile
	if c.Privileged {
		readFile = nil // no filter for them (below): the profile is not read
	}
	if c.Seccomp, err = resolveSeccomp(sp, readFile); err != nil {
		return err
	}
	if c.Privileged {
		// Privileged containers get no filter, as with containerd.
		c.Seccomp = Seccomp{Type: runtimeapi.SecurityProfile_Unconfined}
	}
	ap, err := appArmorProfile(sc)
	if err != nil {
		return err
	}
	if c.AppArmor, err = resolveAppArmor(ap, c.Privileged, host.AppArmorEnabled, host.AppArmorDefaultProfile); err != nil {
		return err
	}
	if err := CheckSELinux(field+".selinux_options", sc.GetSelinuxOptions(), host.SELinuxEnabled); err != nil {
		return err
	}
	c.PIDMode, err = checkContainerNamespaces(c.Pod, sc.GetNamespaceOptions())
	return err
}
