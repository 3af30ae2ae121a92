package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/berth-project/berth/internal/host"
)

// Enter creates the cgroup at path (a cgroupfs path below the hierarchy
// root) in every mounted hierarchy and moves pid into it, with cpu shares
// (v1 cpu.shares; v2 cpu.weight where the cpu controller is on) when
// shares is not zero. It serves the one process berth starts without an
// OCI runtime, a pod's pause process (runc does the same for containers).
// What it made before a failure stays for Remove to take away.
func Enter(path string, pid int, shares uint64) error {
	dirs := Dirs(path)
	if len(dirs) == 0 {
		return fmt.Errorf("no cgroup hierarchy for %q", path)
	}
	v2 := host.CgroupV2()
	for _, dir := range dirs {
		// The hierarchy's root: dir less the cgroup's path.
		root := strings.TrimSuffix(dir, filepath.Clean("/"+path))
		if err := enterDir(root, dir, pid, shares, v2); err != nil {
			return err
		}
	}
	return nil
}

// enterDir is Enter in the hierarchy at root. Its kind comes from its
// name (a v1 hierarchy is mounted as its controllers, "cpu,cpuacct";
// "unified" is a hybrid host's v2 one) rather than from probing files:
// a pause process's start waits on these ten or so hierarchies, and each
// lookup in cgroupfs costs.
func enterDir(root, dir string, pid int, shares uint64, v2 bool) error {
	base := filepath.Base(root)
	v2 = v2 || base == "unified"
	ctrls := strings.Split(base, ",")
	cpuset := !v2 && slices.Contains(ctrls, "cpuset")
	if err := mkdirCgroup(root, dir, cpuset); err != nil {
		return err
	}
	if shares != 0 {
		file, val := "", ""
		switch {
		case v2:
			if _, err := os.Stat(filepath.Join(dir, "cpu.weight")); err == nil {
				file, val = "cpu.weight", strconv.FormatUint(SharesToWeight(shares), 10)
			}
		case slices.Contains(ctrls, "cpu"):
			file, val = "cpu.shares", strconv.FormatUint(shares, 10)
		}
		if file != "" {
			if err := os.WriteFile(filepath.Join(dir, file), []byte(val), 0); err != nil {
				return fmt.Errorf("set %s in %s: %w", file, dir, err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		return fmt.Errorf("move pid %d into cgroup %s: %w", pid, dir, err)
	}
	return nil
}

// mkdirCgroup makes dir and its missing parents below root (a
// hierarchy's root directory). A v1 cpuset cgroup starts with no cpus and
// mems, which refuses tasks: in a cpuset hierarchy each one made gets its
// parent's, as runc does.
func mkdirCgroup(root, dir string, cpuset bool) error {
	if !strings.HasPrefix(dir, root+"/") || strings.Contains(dir, "/../") {
		return fmt.Errorf("cgroup %s is not below %s", dir, root)
	}
	err := os.Mkdir(dir, 0o755)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	parent := filepath.Dir(dir)
	if errors.Is(err, os.ErrNotExist) && parent != root {
		if err := mkdirCgroup(root, parent, cpuset); err != nil {
			return err
		}
		if err = os.Mkdir(dir, 0o755); errors.Is(err, os.ErrExist) {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	if cpuset {
		return inheritCpuset(parent, dir)
	}
	return nil
}

// inheritCpuset gives the v1 cpuset cgroup dir, just made, its parent's
// cpus and mems.
func inheritCpuset(parent, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "cgroup.controllers")); err == nil {
		return nil // v2: an empty cpuset is the parent's
	}
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		cur, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || strings.TrimSpace(string(cur)) != "" {
			continue // not a cpuset cgroup, or already set
		}
		val, err := os.ReadFile(filepath.Join(parent, f))
		if err != nil {
			return fmt.Errorf("read %s of %s: %w", f, parent, err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), val, 0); err != nil {
			return fmt.Errorf("set %s of cgroup %s: %w", f, dir, err)
		}
	}
	return nil
}

// SharesToWeight converts cgroup v1 cpu shares (2..262144) to v2
// cpu.weight (1..10000), as runc does.
func SharesToWeight(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	if shares < 2 {
		shares = 2
	}
	if shares > 262144 {
		shares = 262144
	}
	return 1 + ((shares-2)*9999)/262142
}
