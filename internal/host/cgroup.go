package host

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	cgroupsv3 "github.com/containerd/cgroups/v3"
)

// CgroupRoot is where the cgroup hierarchies are mounted.
const CgroupRoot = "/sys/fs/cgroup"

// CgroupMode is the host's cgroup layout.
type CgroupMode int

const (
	CgroupLegacy  CgroupMode = iota // v1 controllers only
	CgroupHybrid                    // v1 controllers, plus the unified tree at <root>/unified
	CgroupUnified                   // v2 only: CgroupRoot is the unified tree
)

func (m CgroupMode) String() string {
	return [...]string{"legacy", "hybrid", "unified"}[m]
}

// Cgroups returns the host's cgroup layout, probed once (containerd's
// library statfs's CgroupRoot and caches the answer).
func Cgroups() CgroupMode {
	switch cgroupsv3.Mode() {
	case cgroupsv3.Unified:
		return CgroupUnified
	case cgroupsv3.Hybrid:
		return CgroupHybrid
	default:
		return CgroupLegacy
	}
}

// CgroupV2 says CgroupRoot is the unified (v2-only) hierarchy.
func CgroupV2() bool { return Cgroups() == CgroupUnified }

// SwapLimit reports whether the memory controller under root can limit
// swap: v1 has memory.memsw.* (swap accounting on), v2 has memory.swap.max
// in child cgroups (never in the root).
func SwapLimit(root string, v2 bool) bool {
	if !v2 {
		return exists(filepath.Join(root, "memory", "memory.memsw.limit_in_bytes"))
	}
	m, _ := filepath.Glob(filepath.Join(root, "*", "memory.swap.max"))
	return len(m) > 0
}

// Hugetlb reports whether the hugetlb controller is available under root.
func Hugetlb(root string, v2 bool) bool {
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
