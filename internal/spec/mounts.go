package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

// defaultMounts are containerd's default mounts minus /run (its CRI
// plugin removes it too). /dev/shm is replaced by the pod's shm when the
// pod has one.
func defaultMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
	}
}

// WithCgroupMount adds the read-only cgroup filesystem at /sys/fs/cgroup,
// as containerd does for containers (not for the sandbox).
func WithCgroupMount() Opt {
	return func(s *specs.Spec) error {
		s.Mounts = append(s.Mounts, specs.Mount{
			Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup",
			Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"},
		})
		return nil
	}
}

// MountOptions are the host facts WithMounts needs.
type MountOptions struct {
	// Stat checks that a host path exists; nil skips the check.
	Stat func(path string) error
	// RecursiveReadOnlyMounts allows "rro" (runtime and kernel support it).
	RecursiveReadOnlyMounts bool
	// Propagation reports the host mount's propagation of a source, for
	// rslave and rshared mounts; nil skips the check.
	Propagation func(path string) (MountPropagation, error)
	// Accepted are the mount options the runtime handler accepts (its
	// features document): CRI mount_options are checked against them.
	Accepted []string
}

// notBindOptions are mount options a CRI mount_options list may not carry
// although runtimes accept them: berth makes every CRI mount a recursive
// bind with the propagation its own field asks for.
var notBindOptions = map[string]string{
	"bind": "every mount is a recursive bind mount", "rbind": "every mount is a recursive bind mount",
	"remount": "not a bind mount option", "tmpcopyup": "only for tmpfs mounts", "defaults": "not a bind mount option",
	"private": "use the propagation field", "rprivate": "use the propagation field",
	"shared": "use the propagation field", "rshared": "use the propagation field",
	"slave": "use the propagation field", "rslave": "use the propagation field",
	"unbindable": "use the propagation field", "runbindable": "use the propagation field",
	"rro": "use recursive_read_only",
}

// mountOptions checks a CRI mount's mount_options against what the
// runtime accepts and returns them for the OCI mount.
func mountOptions(field string, m *runtimeapi.Mount, accepted []string) ([]string, error) {
	opts := m.GetMountOptions()
	if len(opts) == 0 {
		return nil, nil
	}
	if accepted == nil {
		return nil, errdefs.Invalid(fmt.Sprintf("%s.mount_options: the runtime handler does not say which mount options it supports (no features document)", field))
	}
	for _, o := range opts {
		if why, ok := notBindOptions[o]; ok {
			return nil, errdefs.Invalid(fmt.Sprintf("%s.mount_options: %q is not allowed: %s", field, o, why))
		}
		if !slices.Contains(accepted, o) {
			return nil, errdefs.Invalid(fmt.Sprintf("%s.mount_options: unknown mount option %q (the runtime handler accepts: %s)", field, o, strings.Join(acceptedBindOptions(accepted), ", ")))
		}
		if o == "rw" && (m.GetReadonly() || m.GetRecursiveReadOnly()) {
			return nil, errdefs.Invalid(fmt.Sprintf("%s.mount_options: \"rw\" contradicts readonly", field))
		}
	}
	return slices.Clone(opts), nil
}

func acceptedBindOptions(accepted []string) []string {
	var out []string
	for _, o := range accepted {
		if _, no := notBindOptions[o]; !no {
			out = append(out, o)
		}
	}
	return out
}

// podFileMounts are the pod's /etc/hostname, /etc/hosts,
// /etc/resolv.conf and /dev/shm, unless the CRI config mounts something
// there itself (kubelet mounts its own /etc/hosts). They are berth's own
// files: no existence check, they are made with the pod.
func podFileMounts(in *ContainerInput) []specs.Mount {
	cfg := in.Container.Config
	sc := cfg.GetLinux().GetSecurityContext()
	ro := sc.GetReadonlyRootfs()
	files := []struct {
		dst, src string
		ro       bool
	}{
		{"/etc/hostname", in.HostnamePath, ro},
		{"/etc/hosts", in.HostsPath, ro},
		{"/etc/resolv.conf", in.ResolvPath, ro},
		{"/dev/shm", in.ShmPath, false},
	}
	if sc.GetNamespaceOptions().GetIpc() == runtimeapi.NamespaceMode_NODE {
		// Host IPC shares the host's System V and POSIX shared memory.
		files[3].src = "/dev/shm"
	}
	var out []specs.Mount
	for _, f := range files {
		if f.src == "" || inCRIMounts(f.dst, cfg.GetMounts()) {
			continue
		}
		rw := "rw"
		if f.ro {
			rw = "ro"
		}
		out = append(out, specs.Mount{Destination: f.dst, Type: "bind", Source: f.src, Options: []string{"rbind", "rprivate", rw}})
	}
	return out
}

func inCRIMounts(dst string, mounts []*runtimeapi.Mount) bool {
	for _, m := range mounts {
		if path.Clean(m.GetContainerPath()) == dst {
			return true
		}
	}
	return false
}

// bindMounts checks the CRI mounts against the host and turns them into
// OCI bind mounts, with the rootfs propagation they need ("" for none):
// rshared for a Bidirectional mount, else rslave for a HostToContainer one.
func bindMounts(mounts []*runtimeapi.Mount, o MountOptions) ([]specs.Mount, []ImageVolume, string, error) {
	var out []specs.Mount
	var images []ImageVolume
	var rootfsPropagation string
	for i, m := range mounts {
		if m == nil {
			return nil, nil, "", errdefs.Invalid(fmt.Sprintf("mounts[%d] is empty", i))
		}
		sm, err := bindMount(i, m, o)
		if err != nil {
			return nil, nil, "", err
		}
		if ref := m.GetImage().GetImage(); ref != "" {
			images = append(images, ImageVolume{Mount: len(out), Image: ref, SubPath: m.GetImageSubPath()})
		}
		switch m.GetPropagation() {
		case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
			rootfsPropagation = "rshared"
		case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
			if rootfsPropagation != "rshared" {
				rootfsPropagation = "rslave"
			}
		}
		out = append(out, sm)
	}
	return out, images, rootfsPropagation, nil
}

// WithMounts adds bind mounts. They replace default mounts with the same
// destination (and, for /dev, every default under it); a later mount for a
// destination wins over an earlier one. All mounts end up sorted so a
// parent directory is mounted before what is mounted inside it.
func WithMounts(mounts []specs.Mount) Opt {
	return func(s *specs.Spec) error {
		var added []specs.Mount
		for _, sm := range mounts {
			// A later mount with the same destination replaces an earlier one.
			added = slices.DeleteFunc(added, func(a specs.Mount) bool { return a.Destination == sm.Destination })
			added = append(added, sm)
		}
		dests := make(map[string]bool, len(added))
		for _, m := range added {
			dests[m.Destination] = true
		}
		kept := s.Mounts[:0:0]
		for _, m := range s.Mounts {
			dst := path.Clean(m.Destination)
			if dests[dst] || (dests["/dev"] && strings.HasPrefix(dst, "/dev/")) {
				continue
			}
			kept = append(kept, m)
		}
		s.Mounts = append(kept, added...)
		sortMounts(s.Mounts)
		return nil
	}
}

// WithRootfsPropagation sets the rootfs mount's propagation ("": the
// runtime's default) for mounts that propagate (bindMounts).
func WithRootfsPropagation(p string) Opt {
	return func(s *specs.Spec) error {
		if p == "" {
			return nil
		}
		ensureLinux(s)
		s.Linux.RootfsPropagation = p
		return nil
	}
}

// bindMount turns one CRI mount into an OCI bind mount.
func bindMount(i int, m *runtimeapi.Mount, o MountOptions) (specs.Mount, error) {
	field := fmt.Sprintf("mounts[%d]", i)
	dst, src := m.GetContainerPath(), m.GetHostPath()
	if !isAbs(dst) {
		return specs.Mount{}, errdefs.Invalid(fmt.Sprintf("%s.container_path %q must be an absolute path", field, dst))
	}
	if len(m.GetUidMappings()) > 0 || len(m.GetGidMappings()) > 0 {
		return specs.Mount{}, errdefs.Invalid(fmt.Sprintf("%s: id-mapped mounts with their own uid/gid mappings are not supported (a pod in a user namespace gets every mount idmapped)", field))
	}
	if m.GetImage().GetImage() != "" {
		return imageMount(field, m, o)
	}
	if m.GetImageSubPath() != "" {
		return specs.Mount{}, errdefs.Invalid(fmt.Sprintf("%s.image_sub_path is set without image", field))
	}
	if !isAbs(src) {
		return specs.Mount{}, errdefs.Invalid(fmt.Sprintf("%s.host_path %q must be an absolute path", field, src))
	}
	if o.Stat != nil {
		if err := o.Stat(src); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return specs.Mount{}, errdefs.Invalid(fmt.Sprintf("%s.host_path %s does not exist", field, src))
			}
			return specs.Mount{}, fmt.Errorf("%s.host_path %s: %w", field, src, err)
		}
	}
	if err := checkPropagation(field, m, o.Propagation); err != nil {
		return specs.Mount{}, err
	}
	opts := []string{"rbind"}
	switch m.GetPropagation() {
	case runtimeapi.MountPropagation_PROPAGATION_PRIVATE:
		opts = append(opts, "rprivate")
	case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
		opts = append(opts, "rslave")
	case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
		opts = append(opts, "rshared")
	default:
		return specs.Mount{}, errdefs.Invalid(fmt.Sprintf("%s.propagation: unknown mode %d", field, m.GetPropagation()))
	}
	switch {
	case m.GetRecursiveReadOnly() && !m.GetReadonly():
		return specs.Mount{}, errdefs.Invalid(fmt.Sprintf("%s.recursive_read_only needs readonly (host path %s)", field, src))
	case m.GetRecursiveReadOnly():
		if !o.RecursiveReadOnlyMounts {
			return specs.Mount{}, errdefs.Invalid(fmt.Sprintf("%s.recursive_read_only: the runtime handler does not support recursive read-only mounts (host path %s)", field, src))
		}
		if m.GetPropagation() != runtimeapi.MountPropagation_PROPAGATION_PRIVATE {
			return specs.Mount{}, errdefs.Invalid(fmt.Sprintf("%s.recursive_read_only needs private propagation, got %s (host path %s)", field, m.GetPropagation(), src))
		}
		opts = append(opts, "rro")
	case m.GetReadonly():
		opts = append(opts, "ro")
	default:
		opts = append(opts, "rw")
	}
	extra, err := mountOptions(field, m, o.Accepted)
	if err != nil {
		return specs.Mount{}, err
	}
	opts = append(opts, extra...)
	// selinux_relabel is ignored: berth does not run with SELinux labels.
	return specs.Mount{Destination: path.Clean(dst), Type: "bind", Source: src, Options: opts}, nil
}

// ImageVolume is a mount of another image's filesystem (Mount.image):
// the container service mounts the image and fills in the source.
type ImageVolume struct {
	Mount   int    // index in Container.Mounts
	Image   string // the reference asked for (kubelet sends the image ID)
	SubPath string // local path inside the image; "" for its root
}

// imageMount checks an image volume mount. The source is left empty:
// GenerateContainer takes it from ContainerInput.ImageVolumeSources.
func imageMount(field string, m *runtimeapi.Mount, o MountOptions) (specs.Mount, error) {
	dst := path.Clean(m.GetContainerPath())
	if m.GetHostPath() != "" {
		return specs.Mount{}, errdefs.Invalid(fmt.Sprintf("%s: host_path and image are mutually exclusive", field))
	}
	// Image volumes are read-only by definition; kubelet always says so.
	if !m.GetReadonly() {
		return specs.Mount{}, errdefs.Invalid(fmt.Sprintf("%s: an image volume (image %s) must be readonly", field, m.GetImage().GetImage()))
	}
	if sp := m.GetImageSubPath(); sp != "" && !filepath.IsLocal(sp) {
		return specs.Mount{}, errdefs.Invalid(fmt.Sprintf("%s.image_sub_path %q must be a relative path inside the image", field, sp))
	}
	if m.GetPropagation() != runtimeapi.MountPropagation_PROPAGATION_PRIVATE {
		return specs.Mount{}, errdefs.Invalid(fmt.Sprintf("%s.propagation: an image volume has private propagation only", field))
	}
	opts := []string{"rbind", "rprivate", "ro"}
	extra, err := mountOptions(field, m, o.Accepted)
	if err != nil {
		return specs.Mount{}, err
	}
	return specs.Mount{Destination: dst, Type: "bind", Options: append(opts, extra...)}, nil
}

// sortMounts orders mounts by path depth, keeping the given order among
// equals, so that /a is mounted before /a/b and shadows nothing mounted later.
func sortMounts(m []specs.Mount) {
	slices.SortStableFunc(m, func(a, b specs.Mount) int {
		return mountDepth(a.Destination) - mountDepth(b.Destination)
	})
}

func mountDepth(p string) int {
	p = path.Clean(p)
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}
