package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	for _, dir := range dirs {
		// The hierarchy's root: dir less the cgroup's path.
		root := strings.TrimSuffix(dir, filepath.Clean("/"+path))
		if err := enterDir(root, dir, pid, shares); err != nil {
			return err
		}
	}
	return nil
}

func enterDir(root, dir string, pid int, shares uint64) error {
	if err := mkdirCgroup(root, dir); err != nil {
		return err
	}
	if shares != 0 {
		file, val := "cpu.shares", strconv.FormatUint(shares, 10)
		if _, err := os.Stat(filepath.Join(dir, "cpu.weight")); err == nil {
			file, val = "cpu.weight", strconv.FormatUint(SharesToWeight(shares), 10)
		}
		if _, err := os.Stat(filepath.Join(dir, file)); err == nil {
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
// mems, which refuses tasks: each one made gets its parent's, as runc does.
func mkdirCgroup(root, dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != root {
		if !strings.HasPrefix(parent, root+"/") {
			return fmt.Errorf("cgroup %s is not below %s", dir, root)
		}
		if err := mkdirCgroup(root, parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	return inheritCpuset(parent, dir)
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
