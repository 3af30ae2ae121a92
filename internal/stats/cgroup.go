package stats

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"

	"github.com/berth-project/berth/internal/host"
)

// Reading is one cgroup's counters, in the units CRI uses.
type Reading struct {
	CPUNanos        uint64 // cumulative CPU time, all cores
	MemUsage        uint64 // bytes charged, page cache included
	InactiveFile    uint64 // reclaimable page cache
	RSS             uint64 // anonymous memory and swap cache
	PageFaults      uint64
	MajorPageFaults uint64
	MemLimit        uint64 // 0: unlimited
	OOMKills        uint64 // OOM kills inside the cgroup (0 where the kernel does not count them)
	Pids            uint64
}

// WorkingSet is kubelet's working set: usage minus inactive page cache.
func (r *Reading) WorkingSet() uint64 {
	if r.InactiveFile >= r.MemUsage {
		return 0
	}
	return r.MemUsage - r.InactiveFile
}

// unlimited is the smallest memory limit read as "no limit": v1 reports
// PAGE_COUNTER_MAX pages (about 2^63), v2 reports "max".
const unlimited = 1 << 62

// Reader reads a cgroup given as a cgroupfs path ("/kubepods/pod1/abc").
type Reader interface {
	Read(path string) (*Reading, error)
	// ReadDetail reads what metrics add to a Reading (see Detail).
	ReadDetail(path string) (*Detail, error)
}

// ErrNoCgroup is returned for a cgroup that does not exist (the container
// has exited and the runtime removed it, or it never started).
var ErrNoCgroup = errors.New("cgroup does not exist")

// NewReader picks the reader for the host's cgroup layout: the v1
// controllers on legacy and hybrid hosts (runc puts limits there), the
// unified tree on v2 hosts.
func NewReader() Reader {
	if host.CgroupV2() {
		return V2Reader{Root: host.CgroupRoot}
	}
	return NewV1Reader(host.CgroupRoot)
}

// V1Reader reads cgroup v1 controllers mounted under Root/<controller>.
type V1Reader struct {
	hierarchy cgroup1.Hierarchy
	root      string
	procs     host.Procs
}

// NewV1Reader reads the cpuacct, memory and pids controllers under root.
// Only those three are loaded: the library's default set would also parse
// blkio and hugetlb files on every call.
func NewV1Reader(root string) *V1Reader {
	subsystems := []cgroup1.Subsystem{
		cgroup1.NewCpuacct(root),
		// Swap and kernel memory are not reported; skipping them saves
		// eight file reads per cgroup and works where memsw is off.
		cgroup1.NewMemory(root, cgroup1.IgnoreModules("memsw", "kmem", "kmem.tcp")),
		cgroup1.NewPids(root),
	}
	return &V1Reader{hierarchy: func() ([]cgroup1.Subsystem, error) { return subsystems, nil }, root: root}
}

// Read implements Reader.
func (r *V1Reader) Read(path string) (*Reading, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	cg, err := cgroup1.Load(cgroup1.StaticPath(path), cgroup1.WithHierarchy(r.hierarchy))
	if err != nil {
		if errors.Is(err, cgroup1.ErrCgroupDeleted) {
			return nil, fmt.Errorf("cgroup %s: %w", path, ErrNoCgroup)
		}
		return nil, fmt.Errorf("load cgroup %s: %w", path, err)
	}
	m, err := cg.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("cgroup %s: %w", path, ErrNoCgroup)
		}
		return nil, fmt.Errorf("read cgroup %s: %w", path, err)
	}
	if m.Memory == nil && m.Pids == nil {
		// Every file vanished between Load and Stat: removed meanwhile.
		return nil, fmt.Errorf("cgroup %s: %w", path, ErrNoCgroup)
	}
	rd := &Reading{}
	if m.CPU != nil && m.CPU.Usage != nil {
		rd.CPUNanos = m.CPU.Usage.Total
	}
	if mem := m.Memory; mem != nil {
		rd.InactiveFile = mem.TotalInactiveFile
		rd.RSS = mem.TotalRSS
		rd.PageFaults = mem.TotalPgFault
		rd.MajorPageFaults = mem.TotalPgMajFault
		if mem.Usage != nil {
			rd.MemUsage = mem.Usage.Usage
			if mem.Usage.Limit < unlimited {
				rd.MemLimit = mem.Usage.Limit
			}
		}
	}
	if m.MemoryOomControl != nil {
		rd.OOMKills = m.MemoryOomControl.OomKill
	}
	if m.Pids != nil {
		rd.Pids = m.Pids.Current
	}
	return rd, nil
}

// V2Reader reads the unified hierarchy mounted at Root.
type V2Reader struct {
	Root  string
	procs host.Procs
}

// Read implements Reader.
func (r V2Reader) Read(path string) (*Reading, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	// The library reads missing files as zero; a missing cgroup must not
	// look like an idle one.
	if _, err := os.Stat(filepath.Join(r.Root, path, "cgroup.procs")); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("cgroup %s: %w", path, ErrNoCgroup)
		}
		return nil, err
	}
	mgr, err := cgroup2.Load(path, cgroup2.WithMountpoint(r.Root))
	if err != nil {
		return nil, fmt.Errorf("load cgroup %s: %w", path, err)
	}
	m, err := mgr.StatFiltered(cgroup2.StatPids | cgroup2.StatCPU | cgroup2.StatMemory | cgroup2.StatMemoryEvents)
	if err != nil {
		return nil, fmt.Errorf("read cgroup %s: %w", path, err)
	}
	rd := &Reading{}
	if m.CPU != nil {
		rd.CPUNanos = m.CPU.UsageUsec * 1000
	}
	if mem := m.Memory; mem != nil {
		rd.MemUsage = mem.Usage
		rd.InactiveFile = mem.InactiveFile
		rd.RSS = mem.Anon
		rd.PageFaults = mem.Pgfault
		rd.MajorPageFaults = mem.Pgmajfault
		if mem.UsageLimit < unlimited {
			rd.MemLimit = mem.UsageLimit
		}
	}
	if m.MemoryEvents != nil {
		rd.OOMKills = m.MemoryEvents.OomKill
	}
	if m.Pids != nil {
		rd.Pids = m.Pids.Current
	}
	return rd, nil
}

// checkPath refuses paths the readers cannot resolve: systemd
// "slice:prefix:name" forms must be expanded first (cgroups.ExpandSystemdPath).
func checkPath(path string) error {
	if path == "" || !strings.HasPrefix(path, "/") {
		return fmt.Errorf("cgroup path %q is not an absolute cgroupfs path", path)
	}
	return nil
}
