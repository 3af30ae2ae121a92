package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/berth-project/berth/internal/host"
)

// Enter creates the cgroup at path (a cgroupfs path below the hierarchy
// root) in every mounted hierarchy and moves pid into it, with cpu shares
// (v1 cpu.shares; v2 cpu.weight where the cpu controller is on) when
// shares is not zero. It serves the one process berth starts without an
// OCI runtime, a pod's pause process (runc does the same for containers).
// What it made before a failure stays: Remove takes the cgroup at path
// away, not the parents it made.
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

// enterDir is Enter in the hierarchy at root.
func enterDir(root, dir string, pid int, shares uint64, v2 bool) error {
	k := kindOf(root, v2)
	if err := mkdirCgroup(root, dir, k.cpuset); err != nil {
		return err
	}
	if shares != 0 && k.shares != "" {
		file, val := k.shares, strconv.FormatUint(shares, 10)
		if k.shares == weightIfOn {
			file, val = "cpu.weight", strconv.FormatUint(SharesToWeight(shares), 10)
			if _, err := os.Stat(filepath.Join(dir, file)); err != nil {
				file = ""
			}
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

// weightIfOn: a v2 hierarchy, whose cgroups have cpu.weight where the cpu
// controller is enabled above them, which can change: probed per cgroup.
const weightIfOn = "cpu.weight if on"

// kind is what Enter does in a hierarchy besides the move: cpuset
// inheritance (v1 cpuset), and which file takes cpu shares ("": none).
type kind struct {
	cpuset bool
	shares string
}

// kinds caches each hierarchy root's kind, probed once: a pause
// process's start waits on the ten or so hierarchies of a v1 host, and
// each lookup in cgroupfs costs.
var kinds sync.Map // root -> kind

func kindOf(root string, v2 bool) kind {
	if k, ok := kinds.Load(root); ok {
		return k.(kind)
	}
	has := func(f string) bool { _, err := os.Stat(filepath.Join(root, f)); return err == nil }
	var k kind
	v2 = v2 || has("cgroup.controllers")
	switch {
	case v2:
		k.shares = weightIfOn
	default:
		k.cpuset = has("cpuset.cpus")
		if has("cpu.shares") {
			k.shares = "cpu.shares"
		}
	}
	kinds.Store(root, k)
	return k
}

// mkdirCgroup makes dir and its missing parents below root (a
// hierarchy's root directory). A v1 cpuset cgroup starts with no cpus and
// mems, which refuses tasks: in a cpuset hierarchy each one gets its
// parent's, as runc does, also one that existed (another start may have
// made it a moment ago, and not have filled it yet).
func mkdirCgroup(root, dir string, cpuset bool) error {
	if !strings.HasPrefix(dir, root+"/") || strings.Contains(dir, "/../") {
		return fmt.Errorf("cgroup %s is not below %s", dir, root)
	}
	err := os.Mkdir(dir, 0o755)
	parent := filepath.Dir(dir)
	if errors.Is(err, os.ErrNotExist) && parent != root {
		if err := mkdirCgroup(root, parent, cpuset); err != nil {
			return err
		}
		err = os.Mkdir(dir, 0o755)
	}
	if err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	if cpuset {
		return ensureCpuset(root, dir)
	}
	return nil
}

// ensureCpuset gives the v1 cpuset cgroup dir its parent's cpus and mems,
// filling the parent first when either is empty too: made a moment ago by
// another start that has not filled it yet, or by one a crash cut short
// between its cpus and its mems.
func ensureCpuset(root, dir string) error {
	parent := filepath.Dir(dir)
	if parent != root && strings.HasPrefix(parent, root+"/") && cpusetUnfilled(parent) {
		if err := ensureCpuset(root, parent); err != nil {
			return err
		}
	}
	return inheritCpuset(parent, dir)
}

// cpusetUnfilled says the v1 cpuset cgroup dir has no cpus or no mems.
func cpusetUnfilled(dir string) bool {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil && strings.TrimSpace(string(b)) == "" {
			return true
		}
	}
	return false
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
