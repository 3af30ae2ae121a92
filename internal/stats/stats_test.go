package stats

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/container"
	"github.com/berth-project/berth/internal/sandbox"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fakeV1 lays out the files of a cgroup v1 container under root.
func fakeV1(t *testing.T, root, path string, usage, limit string) {
	writeFiles(t, filepath.Join(root, "cpuacct", path), map[string]string{
		"cpuacct.usage":        "2500000000\n",
		"cpuacct.stat":         "user 200\nsystem 50\n",
		"cpuacct.usage_percpu": "1500000000 1000000000 \n",
	})
	writeFiles(t, filepath.Join(root, "memory", path), map[string]string{
		"memory.stat": "cache 100\nrss 5000\ntotal_cache 4096\ntotal_rss 73400320\n" +
			"total_inactive_file 1048576\ntotal_pgfault 1234\ntotal_pgmajfault 5\n",
		"memory.oom_control":        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
		"memory.usage_in_bytes":     usage + "\n",
		"memory.max_usage_in_bytes": usage + "\n",
		"memory.failcnt":            "3\n",
		"memory.limit_in_bytes":     limit + "\n",
	})
	writeFiles(t, filepath.Join(root, "pids", path), map[string]string{"pids.current": "3\n", "pids.max": "max\n"})
}

func TestV1Reader(t *testing.T) {
	root := t.TempDir()
	fakeV1(t, root, "/kubepods/pod1/c1", "76546048", "104857600")
	fakeV1(t, root, "/kubepods/pod1/c2", "76546048", "9223372036854771712")
	r := NewV1Reader(root)

	rd, err := r.Read("/kubepods/pod1/c1")
	if err != nil {
		t.Fatal(err)
	}
	want := Reading{
		CPUNanos: 2500000000, MemUsage: 76546048, InactiveFile: 1048576, RSS: 73400320,
		PageFaults: 1234, MajorPageFaults: 5, MemLimit: 104857600, OOMKills: 2, Pids: 3,
	}
	if *rd != want {
		t.Fatalf("reading\n got %+v\nwant %+v", *rd, want)
	}
	if ws := rd.WorkingSet(); ws != 76546048-1048576 {
		t.Fatalf("working set %d", ws)
	}
	rd, err = r.Read("/kubepods/pod1/c2")
	if err != nil {
		t.Fatal(err)
	}
	if rd.MemLimit != 0 {
		t.Fatalf("v1 unlimited memory read as limit %d", rd.MemLimit)
	}
	if _, err := r.Read("/kubepods/pod1/gone"); !errors.Is(err, ErrNoCgroup) {
		t.Fatalf("missing cgroup: %v, want ErrNoCgroup", err)
	}
}

func TestV2Reader(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "kubepods/pod1/c1")
	writeFiles(t, dir, map[string]string{
		"cgroup.procs": "42\n",
		"cpu.stat":     "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n",
		"memory.stat": "anon 52428800\nfile 8388608\ninactive_file 4194304\nactive_file 4194304\n" +
			"pgfault 999\npgmajfault 7\n",
		"memory.current": "62914560\n",
		"memory.max":     "max\n",
		"memory.events":  "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
		"pids.current":   "2\n",
		"pids.max":       "max\n",
	})
	r := V2Reader{Root: root}
	rd, err := r.Read("/kubepods/pod1/c1")
	if err != nil {
		t.Fatal(err)
	}
	want := Reading{
		CPUNanos: 1500000000, MemUsage: 62914560, InactiveFile: 4194304, RSS: 52428800,
		PageFaults: 999, MajorPageFaults: 7, OOMKills: 1, Pids: 2,
	}
	if *rd != want {
		t.Fatalf("reading\n got %+v\nwant %+v", *rd, want)
	}
	if err := os.WriteFile(filepath.Join(dir, "memory.max"), []byte("134217728\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if rd, _ = r.Read("/kubepods/pod1/c1"); rd.MemLimit != 134217728 {
		t.Fatalf("limit %d", rd.MemLimit)
	}
	if _, err := r.Read("/kubepods/pod1/gone"); !errors.Is(err, ErrNoCgroup) {
		t.Fatalf("missing cgroup: %v, want ErrNoCgroup", err)
	}
}

// fakeReader serves readings from a map, for the service logic.
type fakeReader map[string]*Reading

func (f fakeReader) Read(path string) (*Reading, error) {
	if r, ok := f[path]; ok {
		c := *r
		return &c, nil
	}
	return nil, ErrNoCgroup
}

// ReadDetail gives a detail whose CPUUserNanos is the reading's CPU time.
func (f fakeReader) ReadDetail(path string) (*Detail, error) {
	if r, ok := f[path]; ok {
		return &Detail{CPUUserNanos: r.CPUNanos}, nil
	}
	return nil, ErrNoCgroup
}

func TestServiceRatesAndPodSum(t *testing.T) {
	reader := fakeReader{
		"/berth/c1": {CPUNanos: 1e9, MemUsage: 100 << 20, InactiveFile: 10 << 20, MemLimit: 200 << 20, Pids: 2},
		"/berth/c2": {CPUNanos: 3e9, MemUsage: 50 << 20, Pids: 1},
	}
	root := t.TempDir()
	s := New(Config{Root: root, DefaultCgroupParent: "/berth", Reader: reader})
	defer s.Close()
	c1 := &container.Container{ID: "c1", CgroupsPath: "/berth/c1"}
	c2 := &container.Container{ID: "c2", CgroupsPath: "/berth/c2"}
	gone := &container.Container{ID: "c3", CgroupsPath: "/berth/c3"}

	st := s.Container(c1)
	if st.CPU == nil || st.CPU.UsageNanos != 1e9 || st.CPU.NanoCores != nil {
		t.Fatalf("first sample: %+v", st.CPU)
	}
	if st.Memory.WorkingSet != 90<<20 || *st.Memory.Available != 110<<20 || *st.Processes != 2 {
		t.Fatalf("memory %+v processes %d", st.Memory, *st.Processes)
	}
	// One core busy for the next second and a half.
	s.mu.Lock()
	smp := s.samples["c/c1"]
	smp.at = smp.at.Add(-1500 * time.Millisecond)
	s.samples["c/c1"] = smp
	s.mu.Unlock()
	reader["/berth/c1"].CPUNanos += 1.5e9
	st = s.Container(c1)
	if st.CPU.NanoCores == nil || *st.CPU.NanoCores < 0.95e9 || *st.CPU.NanoCores > 1.05e9 {
		t.Fatalf("nano cores %v, want about 1e9", st.CPU.NanoCores)
	}

	if st := s.Container(gone); st.CPU != nil || st.Memory != nil {
		t.Fatalf("exited container has usage %+v", st.Usage)
	}

	// A pod under the shared default parent is the sum of its containers.
	pod := &sandbox.Sandbox{ID: "p1", CgroupParent: "/berth", HostNetwork: true}
	ps := s.Pod(pod, []*container.Container{c1, c2, gone})
	if ps.CPU == nil || ps.CPU.UsageNanos != 5.5e9 || ps.Memory.WorkingSet != 140<<20 || *ps.Processes != 3 {
		t.Fatalf("pod sum: cpu %+v memory %+v", ps.CPU, ps.Memory)
	}
	if len(ps.Containers) != 3 || ps.Network != nil {
		t.Fatalf("pod: %d containers, network %v", len(ps.Containers), ps.Network)
	}
	// A pod with a cgroup of its own is read from it.
	reader["/kubepods/podX"] = &Reading{CPUNanos: 7e9, MemUsage: 1 << 30}
	pod = &sandbox.Sandbox{ID: "p2", CgroupParent: "/kubepods/podX", HostNetwork: true}
	if ps := s.Pod(pod, nil); ps.CPU.UsageNanos != 7e9 || ps.Memory.Available != nil {
		t.Fatalf("own pod cgroup: %+v %+v", ps.CPU, ps.Memory)
	}
	s.Forget("c1")
	if _, ok := s.samples["c/c1"]; ok {
		t.Fatal("Forget kept the sample")
	}
}

func TestDiskCacheMeasuresInBackground(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "hardlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	d := newDiskCache(time.Hour, nil)
	defer d.close()
	if _, ok := d.get(dir); ok {
		t.Fatal("measured synchronously")
	}
	deadline := time.Now().Add(5 * time.Second)
	var u Disk
	for ok := false; !ok; u, ok = d.get(dir) {
		if time.Now().After(deadline) {
			t.Fatal("never measured")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// dir, sub, and the file once despite its second link.
	if u.Inodes != 3 || u.Bytes < 1<<20 || u.Bytes > 1<<20+64<<10 {
		t.Fatalf("usage %+v", u)
	}
}

func TestWalkUsageMissing(t *testing.T) {
	if _, err := walkUsage(context.Background(), filepath.Join(t.TempDir(), "nope")); !os.IsNotExist(err) {
		t.Fatalf("err %v", err)
	}
}

func TestParseNetDev(t *testing.T) {
	data := "Inter-|   Receive                                                |  Transmit\n" +
		" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n" +
		"    lo:    1200      12    0    0    0     0          0         0     1200      12    0    0    0     0       0          0\n" +
		"  eth0: 987654   100    3    4    0     0          0         0   123456      90    1    2    0     0       0          0\n"
	ifs, err := parseNetDev([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	want := []Interface{
		{Name: "lo", RxBytes: 1200, TxBytes: 1200, RxPackets: 12, TxPackets: 12},
		{Name: "eth0", RxBytes: 987654, RxErrors: 3, TxBytes: 123456, TxErrors: 1, RxPackets: 100, RxDropped: 4, TxPackets: 90, TxDropped: 2},
	}
	if len(ifs) != 2 || ifs[0] != want[0] || ifs[1] != want[1] {
		t.Fatalf("got %+v", ifs)
	}
	n := Network{Interfaces: ifs}
	if n.Default().Name != "eth0" {
		t.Fatalf("default %v", n.Default())
	}
	n.Interfaces = ifs[:1]
	if n.Default() != nil {
		t.Fatal("loopback chosen as default")
	}
}

// ReadNetwork in the test's own namespace: lo is always there.
func TestReadNetworkOwnNamespace(t *testing.T) {
	n, err := ReadNetwork("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, i := range n.Interfaces {
		found = found || i.Name == "lo"
	}
	if !found {
		t.Fatalf("no lo in %+v", n.Interfaces)
	}
}
