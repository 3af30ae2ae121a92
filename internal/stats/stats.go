// Package stats reads what containers and pods use — CPU, memory and
// processes from their cgroups, the writable layer's disk usage, the pod's
// network counters — for the CRI stats and metrics calls. berthd reads the
// cgroups itself (no process per pod); disk usage comes from a cache that a
// background walker refreshes, so no call walks a file tree.
package stats

import (
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/cgroups"
	"github.com/berth-project/berth/internal/container"
	"github.com/berth-project/berth/internal/sandbox"
)

// CPU is CPU usage at one instant.
type CPU struct {
	UsageNanos uint64  // cumulative core-nanoseconds
	NanoCores  *uint64 // average since the previous sample; nil on the first
}

// Memory is memory usage at one instant.
type Memory struct {
	Usage           uint64
	WorkingSet      uint64
	RSS             uint64
	PageFaults      uint64
	MajorPageFaults uint64
	Available       *uint64 // limit - working set; nil when unlimited
	OOMKills        uint64
}

// Usage is what a cgroup uses. CPU, Memory and Processes are nil when the
// cgroup cannot be read (the container is not running).
type Usage struct {
	At        time.Time
	CPU       *CPU
	Memory    *Memory
	Processes *uint64
}

// ContainerStats is one container's usage.
type ContainerStats struct {
	Container *container.Container
	Usage
	WritableLayer *Disk // nil until the first background walk ends
	LayerDir      string
	// Set by PodsDetail for running containers; nil when unreadable.
	Detail     *Detail
	Filesystem *Filesystem
}

// Filesystem is the size of the filesystem a writable layer lives on.
type Filesystem struct {
	CapacityBytes uint64
	Inodes        uint64
	InodesFree    uint64
}

// PodStats is one pod's usage: its cgroup (or the sum of its containers),
// its network namespace and its containers.
type PodStats struct {
	Pod *sandbox.Sandbox
	Usage
	Network    *Network // nil for host-network pods
	Containers []*ContainerStats
}

// Config configures the service.
type Config struct {
	// Root is berth's persistent dir: container writable layers live at
	// <Root>/containers/<id>/upper.
	Root string
	// DefaultCgroupParent is the parent pods get when their config names
	// none; it is shared, so such pods are measured by their containers.
	DefaultCgroupParent string
	// DiskInterval is how often writable layers are re-measured (1m if 0).
	DiskInterval time.Duration
	// Reader reads cgroups; NewReader() if nil.
	Reader Reader
	Logger *slog.Logger
}

// Service computes stats. It keeps the previous CPU sample of each cgroup
// it was asked about, to turn cumulative CPU time into a rate.
type Service struct {
	cfg  Config
	disk *diskCache

	mu      sync.Mutex
	samples map[string]cpuSample
	pruned  time.Time
}

type cpuSample struct {
	nanos uint64
	at    time.Time
}

// minWindow is the shortest window usage_nano_cores is averaged over once
// a sample that old exists: closer samples keep the older base, so a burst
// of calls does not report the noise of a few milliseconds.
const minWindow = time.Second

// sampleTTL drops the CPU samples of cgroups nobody asked about for a while.
const sampleTTL = 10 * time.Minute

// New returns a stats service. It starts nothing until stats are asked for.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Reader == nil {
		cfg.Reader = NewReader()
	}
	if cfg.DiskInterval <= 0 {
		cfg.DiskInterval = time.Minute
	}
	return &Service{cfg: cfg, disk: newDiskCache(cfg.DiskInterval, cfg.Logger), samples: map[string]cpuSample{}}
}

// Close stops the background disk walker.
func (s *Service) Close() { s.disk.close() }

// LayerDir is the writable (upper) dir of a container.
func (s *Service) LayerDir(id string) string {
	return filepath.Join(s.cfg.Root, "containers", id, "upper")
}

// Container returns the stats of c.
func (s *Service) Container(c *container.Container) *ContainerStats {
	cs := &ContainerStats{Container: c, LayerDir: s.LayerDir(c.ID)}
	cs.Usage = s.read("c/"+c.ID, c.CgroupsPath)
	if d, ok := s.disk.get(cs.LayerDir); ok {
		cs.WritableLayer = &d
	}
	return cs
}

// Pod returns the stats of p and of its containers cs.
func (s *Service) Pod(p *sandbox.Sandbox, cs []*container.Container) *PodStats {
	return s.Pods([]*sandbox.Sandbox{p}, map[string][]*container.Container{p.ID: cs})[0]
}

// Pods returns the stats of each pod, with its containers from byPod.
func (s *Service) Pods(pods []*sandbox.Sandbox, byPod map[string][]*container.Container) []*PodStats {
	out := make([]*PodStats, len(pods))
	var nsPaths []string
	var nsPods []*PodStats
	for i, p := range pods {
		ps := &PodStats{Pod: p}
		for _, c := range byPod[p.ID] {
			ps.Containers = append(ps.Containers, s.Container(c))
		}
		ps.Usage = Usage{At: time.Now()}
		if s.ownCgroup(p) {
			ps.Usage = s.read("p/"+p.ID, p.CgroupParent)
		}
		if ps.CPU == nil {
			ps.Usage = s.sum("p/"+p.ID, ps.Containers)
		}
		if ns := p.Namespaces["net"]; ns != "" && !p.HostNetwork {
			nsPaths = append(nsPaths, ns)
			nsPods = append(nsPods, ps)
		}
		out[i] = ps
	}
	if len(nsPaths) > 0 {
		nets, errs := ReadNetworks(nsPaths)
		for i, ps := range nsPods {
			if errs[i] != nil {
				s.cfg.Logger.Debug("reading pod network counters", "pod", ps.Pod.ID, "err", errs[i])
				continue
			}
			ps.Network = nets[i]
		}
	}
	return out
}

// PodsDetail is Pods plus, for each running container, its Detail and the
// filesystem of its writable layer. A writable layer never measured yet is
// waited for up to wait (the walk stays in the background), so a first
// scrape has disk usage too.
func (s *Service) PodsDetail(pods []*sandbox.Sandbox, byPod map[string][]*container.Container, wait time.Duration) []*PodStats {
	out := s.Pods(pods, byPod)
	var running []*ContainerStats
	var pending []string
	for _, ps := range out {
		for _, cs := range ps.Containers {
			if cs.CPU == nil {
				continue
			}
			running = append(running, cs)
			if cs.WritableLayer == nil {
				pending = append(pending, cs.LayerDir)
			}
		}
	}
	if len(pending) > 0 && wait > 0 {
		s.disk.await(pending, wait)
	}
	for _, cs := range running {
		if cs.WritableLayer == nil {
			if d, ok := s.disk.get(cs.LayerDir); ok {
				cs.WritableLayer = &d
			}
		}
		d, err := s.cfg.Reader.ReadDetail(cgroups.ExpandSystemdPath(cs.Container.CgroupsPath))
		if err == nil {
			cs.Detail = d
		} else if !errors.Is(err, ErrNoCgroup) {
			s.cfg.Logger.Debug("reading cgroup detail", "container", cs.Container.ID, "err", err)
		}
		var st unix.Statfs_t
		if unix.Statfs(cs.LayerDir, &st) == nil {
			cs.Filesystem = &Filesystem{CapacityBytes: st.Blocks * uint64(st.Bsize), Inodes: st.Files, InodesFree: st.Ffree}
		}
	}
	return out
}

// ownCgroup says the pod's cgroup parent is the pod's alone (kubelet makes
// one per pod) rather than a parent shared with other pods.
func (s *Service) ownCgroup(p *sandbox.Sandbox) bool {
	return p.CgroupParent != "" && p.CgroupParent != s.cfg.DefaultCgroupParent && filepath.Clean(p.CgroupParent) != "/"
}

// read reads one cgroup and turns its counters into Usage.
func (s *Service) read(key, path string) Usage {
	u := Usage{At: time.Now()}
	if path == "" {
		return u
	}
	rd, err := s.cfg.Reader.Read(cgroups.ExpandSystemdPath(path))
	if err != nil {
		if !errors.Is(err, ErrNoCgroup) {
			s.cfg.Logger.Debug("reading cgroup", "cgroup", path, "err", err)
		}
		return u
	}
	u.CPU = &CPU{UsageNanos: rd.CPUNanos, NanoCores: s.rate(key, rd.CPUNanos, u.At)}
	u.Memory = &Memory{
		Usage: rd.MemUsage, WorkingSet: rd.WorkingSet(), RSS: rd.RSS,
		PageFaults: rd.PageFaults, MajorPageFaults: rd.MajorPageFaults, OOMKills: rd.OOMKills,
	}
	if rd.MemLimit > 0 {
		avail := uint64(0)
		if rd.MemLimit > u.Memory.WorkingSet {
			avail = rd.MemLimit - u.Memory.WorkingSet
		}
		u.Memory.Available = &avail
	}
	pids := rd.Pids
	u.Processes = &pids
	return u
}

// sum adds up the usage of containers, for a pod without a cgroup of its own.
func (s *Service) sum(key string, cs []*ContainerStats) Usage {
	u := Usage{At: time.Now()}
	for _, c := range cs {
		if c.CPU == nil {
			continue
		}
		if u.CPU == nil {
			u.CPU, u.Memory, u.Processes = &CPU{}, &Memory{}, new(uint64)
		}
		u.CPU.UsageNanos += c.CPU.UsageNanos
		u.Memory.Usage += c.Memory.Usage
		u.Memory.WorkingSet += c.Memory.WorkingSet
		u.Memory.RSS += c.Memory.RSS
		u.Memory.PageFaults += c.Memory.PageFaults
		u.Memory.MajorPageFaults += c.Memory.MajorPageFaults
		u.Memory.OOMKills += c.Memory.OOMKills
		*u.Processes += *c.Processes
	}
	if u.CPU != nil {
		u.CPU.NanoCores = s.rate(key, u.CPU.UsageNanos, u.At)
	}
	return u
}

// rate returns the CPU rate since the stored sample of key, and stores the
// new sample once it is at least minWindow newer.
func (s *Service) rate(key string, nanos uint64, at time.Time) *uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if at.Sub(s.pruned) > sampleTTL {
		for k, v := range s.samples {
			if at.Sub(v.at) > sampleTTL {
				delete(s.samples, k)
			}
		}
		s.pruned = at
	}
	prev, ok := s.samples[key]
	if !ok || nanos < prev.nanos {
		s.samples[key] = cpuSample{nanos, at}
		return nil
	}
	dt := at.Sub(prev.at)
	if dt <= 0 {
		return nil
	}
	if dt >= minWindow {
		s.samples[key] = cpuSample{nanos, at}
	}
	v := uint64(float64(nanos-prev.nanos) / dt.Seconds())
	return &v
}

// Forget drops the CPU samples kept for a removed container or pod.
func (s *Service) Forget(id string) {
	s.mu.Lock()
	delete(s.samples, "c/"+id)
	delete(s.samples, "p/"+id)
	s.mu.Unlock()
}
