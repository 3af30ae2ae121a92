package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/berth-project/berth/internal/config"
	"github.com/berth-project/berth/internal/oci"
)

// hostConfig gathers, once at start, the host facts every container spec
// depends on.
func hostConfig(cfg *config.Config, log *slog.Logger) (oci.HostConfig, error) {
	caps, err := oci.BoundingCapabilities()
	if err != nil {
		return oci.HostConfig{}, fmt.Errorf("read berthd's capability bounding set: %w", err)
	}
	h := oci.HostConfig{
		AllCapabilities:         caps,
		AppArmorEnabled:         oci.AppArmorEnabled(),
		SwapLimit:               exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes") || exists("/sys/fs/cgroup/system.slice/memory.swap.max"),
		Hugetlb:                 exists("/sys/fs/cgroup/hugetlb"),
		RecursiveReadOnlyMounts: cfg.Runtimes[cfg.DefaultRuntime].Features.RecursiveReadOnlyMounts,
	}
	h.NodeHostname, _ = os.Hostname()
	if cfg.OOMScoreAdjRestricted() {
		v, err := oci.DaemonOOMScoreAdj()
		if err != nil {
			return h, err
		}
		h.OOMScoreAdjMin = &v
		log.Info("no CAP_SYS_RESOURCE: clamping container oom_score_adj to berthd's own", "min", v)
	}
	return h, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
