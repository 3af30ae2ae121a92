package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/apparmor"
	"github.com/berth-project/berth/internal/config"
	"github.com/berth-project/berth/internal/oci"
)

// cgroupRoot is where the cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// hostConfig gathers, once at start, the host facts every container spec
// depends on. What differs between runtime handlers (recursive read-only
// mounts, host devices for privileged containers, annotation allow-lists)
// each handler adds (internal/runtime).
func hostConfig(cfg *config.Config, log *slog.Logger) (oci.HostConfig, error) {
	caps, err := oci.BoundingCapabilities()
	if err != nil {
		return oci.HostConfig{}, fmt.Errorf("read berthd's capability bounding set: %w", err)
	}
	v2 := cgroupV2(cgroupRoot)
	h := oci.HostConfig{
		AllCapabilities: caps,
		AppArmorEnabled: apparmor.Enabled(),
		SELinuxEnabled:  oci.SELinuxEnabled(),
		SwapLimit:       swapLimit(cgroupRoot, v2),
		Hugetlb:         hugetlb(cgroupRoot, v2),
		// On a v2-only host a container sees its own cgroup as the root,
		// as with containerd; v1 and hybrid hosts keep the host view.
		CgroupNamespace: v2,
	}
	h.NodeHostname, _ = os.Hostname()
	if h.AppArmorEnabled {
		// RuntimeDefault (and an unset profile) name this profile; if it
		// cannot be loaded, such containers are refused, never run
		// unconfined.
		if err := apparmor.LoadDefault(context.Background()); err != nil {
			log.Error("AppArmor is enabled but berth's default profile did not load; containers asking for RuntimeDefault (or no profile) will be refused",
				"profile", apparmor.DefaultProfile, "err", err)
		} else {
			h.AppArmorDefaultProfile = apparmor.DefaultProfile
		}
	}
	if cfg.OOMScoreAdjRestricted() {
		v, err := oci.DaemonOOMScoreAdj()
		if err != nil {
			return h, err
		}
		h.OOMScoreAdjMin = &v
		log.Info("no CAP_SYS_RESOURCE: clamping container oom_score_adj to berthd's own", "min", v)
	}
	log.Info("host facts", "cgroupV2", v2, "swapLimit", h.SwapLimit, "hugetlb", h.Hugetlb,
		"appArmor", h.AppArmorEnabled, "appArmorProfile", h.AppArmorDefaultProfile, "selinux", h.SELinuxEnabled, "capabilities", len(caps))
	warnBroadAnnotationPatterns(cfg, log)
	return h, nil
}

// kernelHasMountSetattr reports whether the kernel has mount_setattr(2)
// (Linux >= 5.12), which recursive read-only mounts need. A bad fd gets
// EBADF from a kernel that has it and ENOSYS from one that does not.
func kernelHasMountSetattr() bool {
	err := unix.MountSetattr(-1, "", 0, &unix.MountAttr{})
	return !errors.Is(err, unix.ENOSYS)
}

// cgroupV2 reports whether root is a cgroup v2 (unified-only) mount.
func cgroupV2(root string) bool {
	var st unix.Statfs_t
	return unix.Statfs(root, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// swapLimit reports whether the memory controller can limit swap: v1 has
// memory.memsw.* (swap accounting on), v2 has memory.swap.max in child
// cgroups (never in the root).
func swapLimit(root string, v2 bool) bool {
	if !v2 {
		return exists(filepath.Join(root, "memory", "memory.memsw.limit_in_bytes"))
	}
	m, _ := filepath.Glob(filepath.Join(root, "*", "memory.swap.max"))
	return len(m) > 0
}

// hugetlb reports whether the hugetlb controller is available.
func hugetlb(root string, v2 bool) bool {
	if !v2 {
		return exists(filepath.Join(root, "hugetlb"))
	}
	b, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
	return err == nil && slices.Contains(strings.Fields(string(b)), "hugetlb")
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// warnBroadAnnotationPatterns warns, at start, of annotation allow-list
// patterns that let any CRI client steer the runtime ("*", or a pattern
// with no literal prefix): valid, but rarely what an operator means.
func warnBroadAnnotationPatterns(cfg *config.Config, log *slog.Logger) {
	for _, name := range slices.Sorted(maps.Keys(cfg.Runtimes)) {
		rt := cfg.Runtimes[name]
		for _, l := range []struct {
			key      string
			patterns []string
		}{{"pod_annotations", rt.PodAnnotations}, {"container_annotations", rt.ContainerAnnotations}} {
			for i, p := range l.patterns {
				if why := oci.BroadAnnotationPattern(p); why != "" {
					log.Warn("annotation allow-list pattern lets any CRI client set runtime annotations; list the prefixes you need instead",
						"key", fmt.Sprintf("runtimes.%s.%s[%d]", name, l.key, i), "pattern", p, "why", why)
				}
			}
		}
	}
}
