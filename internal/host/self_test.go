package host

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseStatusMask(t *testing.T) {
	const status = "Name:\tberthd\nCapInh:\t0000000000000000\nCapEff:\t0000000001000000\nCapBnd:\t000001ffffffffff\n"
	for _, tc := range []struct {
		status, key string
		want        uint64
		bad         bool
	}{
		{status, "CapEff", 1 << unix.CAP_SYS_RESOURCE, false},
		{status, "CapBnd", 0x1ffffffffff, false},
		{status, "CapInh", 0, false},
		{status, "CapAmb", 0, true},
		{"CapEff:\tzz\n", "CapEff", 0, true},
		{"", "CapEff", 0, true},
		// Docker's default set: no CAP_SYS_RESOURCE (bit 24).
		{"CapEff:\t00000000a80425fb\n", "CapEff", 0xa80425fb, false},
	} {
		got, err := ParseStatusMask(strings.NewReader(tc.status), tc.key)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("ParseStatusMask(%q, %s) = %#x, %v; want %#x (error %v)", tc.status, tc.key, got, err, tc.want, tc.bad)
		}
	}
}

func TestSelf(t *testing.T) {
	m, err := BoundingCapabilities()
	if err != nil || m == 0 {
		t.Errorf("BoundingCapabilities = %#x, %v", m, err)
	}
	if 0xa80425fb&(1<<unix.CAP_SYS_RESOURCE) != 0 {
		t.Error("bit arithmetic: CAP_SYS_RESOURCE in Docker's default set")
	}
	if _, err := HasEffectiveCap(unix.CAP_SYS_RESOURCE); err != nil {
		t.Error(err)
	}
	if _, err := OOMScoreAdj(); err != nil {
		t.Error(err)
	}
}

func TestCgroupFeatures(t *testing.T) {
	v1, v2 := t.TempDir(), t.TempDir()
	if SwapLimit(v1, false) || Hugetlb(v1, false) || SwapLimit(v2, true) || Hugetlb(v2, true) {
		t.Fatal("features found in empty hierarchies")
	}
	write := func(p, data string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(v1, "memory", "memory.memsw.limit_in_bytes"), "")
	write(filepath.Join(v1, "hugetlb", "tasks"), "")
	// v2: swap.max only in child cgroups, controllers listed at the root.
	write(filepath.Join(v2, "memory.swap.max"), "max\n")
	write(filepath.Join(v2, "cgroup.controllers"), "cpu io memory hugetlbx pids\n")
	if !SwapLimit(v1, false) || !Hugetlb(v1, false) {
		t.Error("v1 features not found")
	}
	if SwapLimit(v2, true) || Hugetlb(v2, true) {
		t.Error("v2 root swap.max or a hugetlb look-alike taken for the feature")
	}
	write(filepath.Join(v2, "system.slice", "memory.swap.max"), "max\n")
	write(filepath.Join(v2, "cgroup.controllers"), "cpu io memory hugetlb pids\n")
	if !SwapLimit(v2, true) || !Hugetlb(v2, true) {
		t.Error("v2 features not found")
	}
	if m := Cgroups(); m.String() == "" || CgroupV2() != (m == CgroupUnified) {
		t.Errorf("Cgroups = %v, CgroupV2 = %v", m, CgroupV2())
	}
}
