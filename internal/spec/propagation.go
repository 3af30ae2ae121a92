package spec

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

// MountPropagation is how the host mount holding a path propagates.
type MountPropagation struct {
	MountPoint string
	Shared     bool // peer group: "shared:N" in mountinfo
	Slave      bool // receives from a master: "master:N"
}

// PropagationChecker is the optional HostFS method that reports the
// propagation of the host mount a bind mount source lives on. HostFS
// implementations without it skip the check.
type PropagationChecker interface {
	Propagation(path string) (MountPropagation, error)
}

// Propagation finds the mount point holding path (after symlinks, as the
// bind mount will resolve them) and its propagation flags.
func (OSHost) Propagation(path string) (MountPropagation, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return MountPropagation{}, err
	}
	mounts, err := mountinfo.GetMounts(mountinfo.ParentsFilter(real))
	if err != nil {
		return MountPropagation{}, fmt.Errorf("read mount table: %w", err)
	}
	var best *mountinfo.Info
	for _, m := range mounts {
		// Later entries are mounted over earlier ones at the same point.
		if best == nil || len(m.Mountpoint) >= len(best.Mountpoint) {
			best = m
		}
	}
	if best == nil {
		return MountPropagation{}, fmt.Errorf("no mount holds %s", real)
	}
	return parsePropagation(best.Mountpoint, best.Optional), nil
}

// parsePropagation reads mountinfo's optional fields ("shared:1 master:2").
func parsePropagation(mountPoint, optional string) MountPropagation {
	p := MountPropagation{MountPoint: mountPoint}
	for _, f := range strings.Fields(optional) {
		switch {
		case strings.HasPrefix(f, "shared:"):
			p.Shared = true
		case strings.HasPrefix(f, "master:"):
			p.Slave = true
		}
	}
	return p
}

// checkPropagation refuses a propagation the host mount cannot give:
// mounts propagate from the host into the container only when the source
// mount is shared or a slave, and back to the host only when it is shared
// (what kubelet's mount propagation doc and containerd require).
func checkPropagation(field string, m *runtimeapi.Mount, check func(string) (MountPropagation, error)) error {
	mode := m.GetPropagation()
	if check == nil || mode == runtimeapi.MountPropagation_PROPAGATION_PRIVATE {
		return nil
	}
	p, err := check(m.GetHostPath())
	if err != nil {
		return fmt.Errorf("%s.host_path %s: checking mount propagation: %w", field, m.GetHostPath(), err)
	}
	switch mode {
	case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
		if !p.Shared {
			return errdefs.Invalid(fmt.Sprintf("%s.propagation Bidirectional needs host path %s on a shared mount, but %s is not shared (mount --make-rshared %s)",
				field, m.GetHostPath(), p.MountPoint, p.MountPoint))
		}
	case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
		if !p.Shared && !p.Slave {
			return errdefs.Invalid(fmt.Sprintf("%s.propagation HostToContainer needs host path %s on a shared or slave mount, but %s is private (mount --make-rshared %s)",
				field, m.GetHostPath(), p.MountPoint, p.MountPoint))
		}
	}
	return nil
}
