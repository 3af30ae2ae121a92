package cgroups

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/host"
)

// ParentPath is the cgroupfs path of a pod's cgroup parent: a systemd
// slice name expanded to the directories systemd makes, a path as given.
func ParentPath(parent string) (string, error) {
	if strings.HasSuffix(parent, ".slice") && !strings.Contains(parent, "/") {
		return ExpandSlice(parent)
	}
	if !path.IsAbs(parent) || path.Clean(parent) == "/" {
		return "", errdefs.Invalid(fmt.Sprintf("cgroup parent %q is not a pod cgroup", parent))
	}
	return path.Clean(parent), nil
}

// Update writes resource limits to the existing cgroup at p (a cgroupfs
// path below the hierarchy root), in every v1 controller that has it or in
// the v2 tree. Berth sets container cgroups through the runtime; this is
// for the pod-level cgroup above them (UpdatePodSandboxResources).
func Update(p string, res *specs.LinuxResources) error {
	if res == nil {
		return nil
	}
	if host.CgroupV2() {
		m, err := cgroup2.Load(p, cgroup2.WithMountpoint(host.CgroupRoot))
		if err != nil {
			return fmt.Errorf("load cgroup %s: %w", p, err)
		}
		if err := m.Update(cgroup2.ToResources(res)); err != nil {
			return fmt.Errorf("update cgroup %s: %w", p, err)
		}
		return nil
	}
	cg, err := cgroup1.Load(cgroup1.StaticPath(p), cgroup1.WithHierarchy(v1Updatable))
	if err != nil {
		if errors.Is(err, cgroup1.ErrCgroupDeleted) {
			return errdefs.NotFound(fmt.Sprintf("cgroup %s does not exist", p))
		}
		return fmt.Errorf("load cgroup %s: %w", p, err)
	}
	if err := cg.Update(res); err != nil {
		return fmt.Errorf("update cgroup %s: %w", p, err)
	}
	return nil
}

// v1Updatable are the v1 controllers CRI resources touch.
func v1Updatable() ([]cgroup1.Subsystem, error) {
	root := host.CgroupRoot
	subs := []cgroup1.Subsystem{
		cgroup1.NewCpu(root),
		cgroup1.NewCpuset(root),
		cgroup1.NewMemory(root, cgroup1.IgnoreModules("memsw", "kmem", "kmem.tcp")),
	}
	// No hugetlb controller without huge pages support.
	if h, err := cgroup1.NewHugetlb(root); err == nil {
		subs = append(subs, h)
	}
	return subs, nil
}
