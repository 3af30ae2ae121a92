package conmon

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/berth-project/berth/internal/cgroups"
)

// removeOrphanCgroup removes the container's cgroup left when the runtime's
// create was killed half-way (a create past its deadline): the runtime had
// made the cgroup but not yet its state, so its delete cannot find the
// container. Only empty cgroups go (rmdir refuses others), so a shared path
// cannot lose its processes; systemd-style paths are skipped by cgroups.Dirs.
func removeOrphanCgroup(id, bundleDir string) {
	path := bundleCgroupsPath(bundleDir)
	if path == "" || !filepath.IsAbs(path) || filepath.Clean(path) == "/" {
		return
	}
	if err := cgroups.Remove(path); err != nil {
		slog.Warn("removing cgroup of failed create", "id", id, "err", err)
	}
}

// bundleCgroupsPath reads linux.cgroupsPath from the bundle's config.json.
func bundleCgroupsPath(bundleDir string) string {
	data, err := os.ReadFile(filepath.Join(bundleDir, "config.json"))
	if err != nil {
		return ""
	}
	var spec struct {
		Linux *struct {
			CgroupsPath string `json:"cgroupsPath"`
		} `json:"linux"`
	}
	if json.Unmarshal(data, &spec) != nil || spec.Linux == nil {
		return ""
	}
	return spec.Linux.CgroupsPath
}
