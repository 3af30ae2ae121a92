package stats

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/berth-project/berth/internal/host"
)

// Detail is what cAdvisor-style metrics need beyond a Reading: CPU split
// and throttling, memory breakdown, the cgroup's limits, block I/O and the
// processes' open files. It is read only for ListPodSandboxMetrics, whose
// callers (kubelet's /metrics/cadvisor) scrape every few seconds at most,
// so the stats calls kubelet polls keep to the cheaper Reading.
type Detail struct {
	CPUUserNanos        uint64
	CPUSystemNanos      uint64
	CFSPeriods          uint64
	CFSThrottledPeriods uint64
	CFSThrottledNanos   uint64

	MemCache      uint64 // page cache
	MemMappedFile uint64
	MemSwap       uint64 // swap used (v1: only with swap accounting)
	MemKernel     uint64
	MemFailcnt    uint64 // times usage hit the limit (v2: memory.events max)
	MemMaxUsage   uint64 // peak usage (v2: memory.peak, 0 where the kernel lacks it)
	// Page faults charged to the cgroup itself and to its whole subtree.
	PgFault, PgMajFault                    uint64
	HierPgFault, HierPgMajFault            uint64
	MemLimit, MemSwapLimit, MemReservation uint64 // 0: unlimited

	CPUPeriod uint64 // microseconds
	CPUQuota  uint64 // microseconds per period; 0: no quota
	CPUShares uint64 // v2: cpu.weight converted back to shares

	ThreadsMax uint64 // pids.max; 0: unlimited

	IO []DeviceIO

	Processes   uint64 // processes (not threads) in the cgroup
	FDs         uint64
	Sockets     uint64
	ProcsListed bool // the cgroup's process list could be read
}

// DeviceIO is one block device's I/O counters.
type DeviceIO struct {
	Major, Minor          uint64
	ReadBytes, WriteBytes uint64
	Reads, Writes         uint64
}

// ReadDetail implements Reader.
func (r *V1Reader) ReadDetail(path string) (*Detail, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	f := files{}
	mem := filepath.Join(r.root, "memory", path)
	if _, err := os.Stat(mem); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("cgroup %s: %w", path, ErrNoCgroup)
		}
		return nil, err
	}
	d := &Detail{}
	// cpuacct.stat counts USER_HZ ticks, 100 a second on Linux.
	acct := f.keyed(filepath.Join(r.root, "cpuacct", path, "cpuacct.stat"))
	d.CPUUserNanos, d.CPUSystemNanos = acct["user"]*1e7, acct["system"]*1e7
	cpu := filepath.Join(r.root, "cpu", path)
	st := f.keyed(filepath.Join(cpu, "cpu.stat"))
	d.CFSPeriods, d.CFSThrottledPeriods, d.CFSThrottledNanos = st["nr_periods"], st["nr_throttled"], st["throttled_time"]
	d.CPUPeriod = f.uint(filepath.Join(cpu, "cpu.cfs_period_us"))
	d.CPUQuota = f.uint(filepath.Join(cpu, "cpu.cfs_quota_us")) // -1 reads as 0
	d.CPUShares = f.uint(filepath.Join(cpu, "cpu.shares"))

	ms := f.keyed(filepath.Join(mem, "memory.stat"))
	d.MemCache, d.MemMappedFile, d.MemSwap = ms["total_cache"], ms["total_mapped_file"], ms["total_swap"]
	d.PgFault, d.PgMajFault = ms["pgfault"], ms["pgmajfault"]
	d.HierPgFault, d.HierPgMajFault = ms["total_pgfault"], ms["total_pgmajfault"]
	d.MemKernel = f.uint(filepath.Join(mem, "memory.kmem.usage_in_bytes"))
	d.MemFailcnt = f.uint(filepath.Join(mem, "memory.failcnt"))
	d.MemMaxUsage = f.uint(filepath.Join(mem, "memory.max_usage_in_bytes"))
	d.MemLimit = limit(f.uint(filepath.Join(mem, "memory.limit_in_bytes")))
	// memsw is memory plus swap, as cAdvisor reports it on v1.
	d.MemSwapLimit = limit(f.uint(filepath.Join(mem, "memory.memsw.limit_in_bytes")))
	d.MemReservation = limit(f.uint(filepath.Join(mem, "memory.soft_limit_in_bytes")))

	pids := filepath.Join(r.root, "pids", path)
	d.ThreadsMax = f.uint(filepath.Join(pids, "pids.max"))

	blkio := filepath.Join(r.root, "blkio", path)
	d.IO = parseBlkio(f.read(filepath.Join(blkio, "blkio.throttle.io_service_bytes_recursive")),
		f.read(filepath.Join(blkio, "blkio.throttle.io_serviced_recursive")))

	countProcs(r.procs, d, filepath.Join(pids, "cgroup.procs"))
	return d, nil
}

// ReadDetail implements Reader.
func (r V2Reader) ReadDetail(path string) (*Detail, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	dir := filepath.Join(r.Root, path)
	if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("cgroup %s: %w", path, ErrNoCgroup)
		}
		return nil, err
	}
	f := files{}
	d := &Detail{}
	st := f.keyed(filepath.Join(dir, "cpu.stat"))
	d.CPUUserNanos, d.CPUSystemNanos = st["user_usec"]*1000, st["system_usec"]*1000
	d.CFSPeriods, d.CFSThrottledPeriods, d.CFSThrottledNanos = st["nr_periods"], st["nr_throttled"], st["throttled_usec"]*1000
	// cpu.max: "<quota|max> <period>".
	if fs := strings.Fields(string(f.read(filepath.Join(dir, "cpu.max")))); len(fs) == 2 {
		d.CPUQuota, _ = strconv.ParseUint(fs[0], 10, 64)
		d.CPUPeriod, _ = strconv.ParseUint(fs[1], 10, 64)
	}
	if w := f.uint(filepath.Join(dir, "cpu.weight")); w > 0 {
		// The inverse of runc's shares -> weight mapping.
		d.CPUShares = 2 + (w-1)*262142/9999
	}

	ms := f.keyed(filepath.Join(dir, "memory.stat"))
	d.MemCache, d.MemMappedFile, d.MemKernel = ms["file"], ms["file_mapped"], ms["kernel"]
	if _, ok := ms["kernel"]; !ok { // kernels before 5.18
		d.MemKernel = ms["kernel_stack"] + ms["pagetables"] + ms["sock"] + ms["slab"]
	}
	d.PgFault, d.PgMajFault = ms["pgfault"], ms["pgmajfault"]
	d.HierPgFault, d.HierPgMajFault = ms["pgfault"], ms["pgmajfault"]
	d.MemSwap = f.uint(filepath.Join(dir, "memory.swap.current"))
	d.MemFailcnt = f.keyed(filepath.Join(dir, "memory.events"))["max"]
	d.MemMaxUsage = f.uint(filepath.Join(dir, "memory.peak"))
	d.MemLimit = limit(f.uint(filepath.Join(dir, "memory.max")))
	d.MemSwapLimit = limit(f.uint(filepath.Join(dir, "memory.swap.max")))
	d.MemReservation = limit(f.uint(filepath.Join(dir, "memory.low")))
	d.ThreadsMax = f.uint(filepath.Join(dir, "pids.max"))
	d.IO = parseIOStat(f.read(filepath.Join(dir, "io.stat")))

	countProcs(r.procs, d, filepath.Join(dir, "cgroup.procs"))
	return d, nil
}

// limit reads the kernel's "no limit" values (about 2^63, or "max" read as
// 0) as 0.
func limit(v uint64) uint64 {
	if v >= unlimited {
		return 0
	}
	return v
}

// files reads cgroup files; a file that is missing or does not parse reads
// as empty or 0 (controllers and kernels differ in what they have).
type files struct{}

func (files) read(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

func (f files) uint(path string) uint64 {
	v, _ := strconv.ParseUint(string(bytes.TrimSpace(f.read(path))), 10, 64)
	return v
}

// keyed parses "key value" lines.
func (f files) keyed(path string) map[string]uint64 {
	m := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(f.read(path)))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			m[k] = n
		}
	}
	return m
}

// parseBlkio merges v1's "<major>:<minor> <Read|Write|...> <value>" files
// of bytes and of operations into one entry per device.
func parseBlkio(bytesData, opsData []byte) []DeviceIO {
	var out []DeviceIO
	index := map[[2]uint64]int{}
	add := func(data []byte, read, write func(*DeviceIO) *uint64) {
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) != 3 {
				continue // "Total <n>"
			}
			dev, ok := parseDevice(fs[0])
			v, err := strconv.ParseUint(fs[2], 10, 64)
			if !ok || err != nil || (fs[1] != "Read" && fs[1] != "Write") {
				continue
			}
			i, seen := index[dev]
			if !seen {
				i = len(out)
				index[dev] = i
				out = append(out, DeviceIO{Major: dev[0], Minor: dev[1]})
			}
			if fs[1] == "Read" {
				*read(&out[i]) = v
			} else {
				*write(&out[i]) = v
			}
		}
	}
	add(bytesData, func(d *DeviceIO) *uint64 { return &d.ReadBytes }, func(d *DeviceIO) *uint64 { return &d.WriteBytes })
	add(opsData, func(d *DeviceIO) *uint64 { return &d.Reads }, func(d *DeviceIO) *uint64 { return &d.Writes })
	return out
}

// parseIOStat parses v2's "<major>:<minor> rbytes=.. wbytes=.. rios=.. wios=.." lines.
func parseIOStat(data []byte) []DeviceIO {
	var out []DeviceIO
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 {
			continue
		}
		dev, ok := parseDevice(fs[0])
		if !ok {
			continue
		}
		d := DeviceIO{Major: dev[0], Minor: dev[1]}
		for _, kv := range fs[1:] {
			k, v, _ := strings.Cut(kv, "=")
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				continue
			}
			switch k {
			case "rbytes":
				d.ReadBytes = n
			case "wbytes":
				d.WriteBytes = n
			case "rios":
				d.Reads = n
			case "wios":
				d.Writes = n
			}
		}
		out = append(out, d)
	}
	return out
}

func parseDevice(s string) ([2]uint64, bool) {
	maj, min, ok := strings.Cut(s, ":")
	a, err1 := strconv.ParseUint(maj, 10, 64)
	b, err2 := strconv.ParseUint(min, 10, 64)
	return [2]uint64{a, b}, ok && err1 == nil && err2 == nil
}

// countProcs counts the processes of a cgroup and their open files, as
// procs shows them.
func countProcs(procs host.Procs, d *Detail, procsFile string) {
	data, err := os.ReadFile(procsFile)
	if err != nil {
		return
	}
	d.ProcsListed = true
	for _, f := range strings.Fields(string(data)) {
		d.Processes++
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		fds, sockets, err := procs.Process(pid).FDs()
		if err != nil {
			continue // exited meanwhile
		}
		d.FDs += uint64(fds)
		d.Sockets += uint64(sockets)
	}
}
