package stats

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/berth-project/berth/internal/host"
)

// fakeProc lays out /proc/<pid>/fd for pid with the given link targets.
func fakeProc(t *testing.T, root, pid string, targets ...string) {
	t.Helper()
	dir := filepath.Join(root, pid, "fd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, target := range targets {
		if err := os.Symlink(target, filepath.Join(dir, string(rune('0'+i)))); err != nil {
			t.Fatal(err)
		}
	}
}

func TestV1ReadDetail(t *testing.T) {
	root, proc := t.TempDir(), t.TempDir()
	const path = "/kubepods/pod1/c1"
	writeFiles(t, filepath.Join(root, "cpuacct", path), map[string]string{"cpuacct.stat": "user 250\nsystem 30\n"})
	writeFiles(t, filepath.Join(root, "cpu", path), map[string]string{
		"cpu.stat":          "nr_periods 40\nnr_throttled 7\nthrottled_time 1500000000\n",
		"cpu.cfs_period_us": "100000\n", "cpu.cfs_quota_us": "20000\n", "cpu.shares": "1024\n",
	})
	writeFiles(t, filepath.Join(root, "memory", path), map[string]string{
		"memory.stat": "cache 1\npgfault 10\npgmajfault 1\ntotal_cache 4096\ntotal_mapped_file 2048\ntotal_swap 512\n" +
			"total_pgfault 30\ntotal_pgmajfault 3\n",
		"memory.kmem.usage_in_bytes":  "8192\n",
		"memory.failcnt":              "2\n",
		"memory.max_usage_in_bytes":   "999999\n",
		"memory.limit_in_bytes":       "67108864\n",
		"memory.memsw.limit_in_bytes": "9223372036854771712\n",
		"memory.soft_limit_in_bytes":  "9223372036854771712\n",
	})
	writeFiles(t, filepath.Join(root, "pids", path), map[string]string{"pids.max": "max\n", "cgroup.procs": "100\n101\n"})
	writeFiles(t, filepath.Join(root, "blkio", path), map[string]string{
		"blkio.throttle.io_service_bytes_recursive": "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Total 12288\nTotal 12288\n",
		"blkio.throttle.io_serviced_recursive":      "8:0 Read 1\n8:0 Write 2\n8:0 Total 3\nTotal 3\n",
	})
	fakeProc(t, proc, "100", "/dev/null", "socket:[123]", "pipe:[9]")
	fakeProc(t, proc, "101", "socket:[124]")

	r := NewV1Reader(root)
	r.procs.Root = proc
	d, err := r.ReadDetail(path)
	if err != nil {
		t.Fatal(err)
	}
	want := &Detail{
		CPUUserNanos: 2.5e9, CPUSystemNanos: 0.3e9, CFSPeriods: 40, CFSThrottledPeriods: 7, CFSThrottledNanos: 1.5e9,
		MemCache: 4096, MemMappedFile: 2048, MemSwap: 512, MemKernel: 8192, MemFailcnt: 2, MemMaxUsage: 999999,
		PgFault: 10, PgMajFault: 1, HierPgFault: 30, HierPgMajFault: 3, MemLimit: 64 << 20,
		CPUPeriod: 100000, CPUQuota: 20000, CPUShares: 1024,
		IO:        []DeviceIO{{Major: 8, Minor: 0, ReadBytes: 4096, WriteBytes: 8192, Reads: 1, Writes: 2}},
		Processes: 2, FDs: 4, Sockets: 2, ProcsListed: true,
	}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("detail\n got %+v\nwant %+v", d, want)
	}
	if _, err := r.ReadDetail("/kubepods/pod1/gone"); err == nil {
		t.Fatal("missing cgroup read without error")
	}
}

func TestV2ReadDetail(t *testing.T) {
	root, proc := t.TempDir(), t.TempDir()
	writeFiles(t, filepath.Join(root, "kubepods/pod1/c1"), map[string]string{
		"cgroup.procs":        "7\n",
		"cpu.stat":            "usage_usec 3000000\nuser_usec 2000000\nsystem_usec 1000000\nnr_periods 5\nnr_throttled 1\nthrottled_usec 250000\n",
		"cpu.max":             "20000 100000\n",
		"cpu.weight":          "39\n",
		"memory.stat":         "anon 100\nfile 4096\nfile_mapped 1024\nkernel 2048\npgfault 50\npgmajfault 5\n",
		"memory.swap.current": "0\n",
		"memory.events":       "low 0\nhigh 0\nmax 3\noom 0\noom_kill 0\n",
		"memory.peak":         "123456\n",
		"memory.max":          "67108864\n",
		"memory.swap.max":     "max\n",
		"memory.low":          "0\n",
		"pids.max":            "1024\n",
		"io.stat":             "259:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
	})
	fakeProc(t, proc, "7", "socket:[1]")
	r := V2Reader{Root: root, procs: host.Procs{Root: proc}}
	d, err := r.ReadDetail("/kubepods/pod1/c1")
	if err != nil {
		t.Fatal(err)
	}
	want := &Detail{
		CPUUserNanos: 2e9, CPUSystemNanos: 1e9, CFSPeriods: 5, CFSThrottledPeriods: 1, CFSThrottledNanos: 0.25e9,
		MemCache: 4096, MemMappedFile: 1024, MemKernel: 2048, MemFailcnt: 3, MemMaxUsage: 123456,
		PgFault: 50, PgMajFault: 5, HierPgFault: 50, HierPgMajFault: 5, MemLimit: 64 << 20,
		CPUPeriod: 100000, CPUQuota: 20000, ThreadsMax: 1024,
		// runc makes weight 39 of 1024 shares; the mapping loses precision.
		CPUShares: 998,
		IO:        []DeviceIO{{Major: 259, Minor: 0, ReadBytes: 4096, Reads: 1}},
		Processes: 1, FDs: 1, Sockets: 1, ProcsListed: true,
	}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("detail\n got %+v\nwant %+v", d, want)
	}
	// No quota: "max" reads as 0.
	writeFiles(t, filepath.Join(root, "kubepods/pod1/c1"), map[string]string{"cpu.max": "max 100000\n"})
	if d, _ := r.ReadDetail("/kubepods/pod1/c1"); d.CPUQuota != 0 || d.CPUPeriod != 100000 {
		t.Fatalf("unlimited quota read as %d/%d", d.CPUQuota, d.CPUPeriod)
	}
}
