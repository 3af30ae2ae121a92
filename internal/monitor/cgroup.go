package monitor

import (
	"bufio"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// removeOrphanCgroup removes the container's cgroupfs directories left when
// the runtime's create was killed half-way (a create past its deadline): the
// runtime had made the cgroup but not yet its state, so its delete cannot
// find the container. Only empty cgroups go (rmdir refuses others), so a
// shared path cannot lose its processes. Systemd-style paths
// ("slice:prefix:name") are the systemd manager's to clean and are skipped.
func removeOrphanCgroup(id, bundleDir string) {
	path := bundleCgroupsPath(bundleDir)
	if path == "" || !filepath.IsAbs(path) || filepath.Clean(path) == "/" {
		return
	}
	var dirs []string
	for _, mnt := range cgroupMounts() {
		dir := filepath.Join(mnt, path)
		if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err == nil {
			dirs = append(dirs, dir)
		}
	}
	if len(dirs) == 0 {
		return
	}
	deadline := time.Now().Add(2 * time.Second)
	for _, dir := range dirs {
		for {
			err := syscall.Rmdir(dir)
			if err == nil || errors.Is(err, syscall.ENOENT) {
				break
			}
			if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				slog.Warn("removing cgroup of failed create", "id", id, "cgroup", dir, "err", err)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
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

// cgroupMounts lists the mount points of cgroup and cgroup2 hierarchies (all
// of them: v1 controllers, the hybrid unified tree, or the single v2 tree).
func cgroupMounts() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	seen := map[string]bool{}
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "... <mount point> <options> [optional...] - <fstype> <source> <super options>"
		line := sc.Text()
		sep := strings.Index(line, " - ")
		if sep < 0 {
			continue
		}
		after := strings.Fields(line[sep+3:])
		before := strings.Fields(line[:sep])
		if len(after) == 0 || len(before) < 5 || (after[0] != "cgroup" && after[0] != "cgroup2") {
			continue
		}
		mnt := unescapeMountinfo(before[4])
		if !seen[mnt] {
			seen[mnt] = true
			mounts = append(mounts, mnt)
		}
	}
	return mounts
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space...).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
