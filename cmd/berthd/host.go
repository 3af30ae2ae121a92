package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"

	"github.com/berth-project/berth/internal/apparmor"
	"github.com/berth-project/berth/internal/config"
	"github.com/berth-project/berth/internal/host"
	"github.com/berth-project/berth/internal/spec"
)

// hostConfig gathers, once at start, the host facts every container spec
// depends on. What differs between runtime handlers (recursive read-only
// mounts, host devices for privileged containers, annotation allow-lists)
// each handler adds (internal/runtime).
func hostConfig(cfg *config.Config, log *slog.Logger) (spec.HostConfig, error) {
	capMask, err := host.BoundingCapabilities()
	if err != nil {
		return spec.HostConfig{}, fmt.Errorf("read berthd's capability bounding set: %w", err)
	}
	caps := spec.CapsFromMask(capMask)
	v2 := host.CgroupV2()
	h := spec.HostConfig{
		AllCapabilities: caps,
		AppArmorEnabled: apparmor.Enabled(),
		SELinuxEnabled:  host.SELinuxEnabled(),
		SwapLimit:       host.SwapLimit(host.CgroupRoot, v2),
		Hugetlb:         host.Hugetlb(host.CgroupRoot, v2),
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
		v, err := host.OOMScoreAdj()
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
				if why := spec.BroadAnnotationPattern(p); why != "" {
					log.Warn("annotation allow-list pattern lets any CRI client set runtime annotations; list the prefixes you need instead",
						"key", fmt.Sprintf("runtimes.%s.%s[%d]", name, l.key, i), "pattern", p, "why", why)
				}
			}
		}
	}
}
