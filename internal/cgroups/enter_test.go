package cgroups

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSharesToWeight(t *testing.T) {
	for shares, want := range map[uint64]uint64{0: 0, 1: 1, 2: 1, 1024: 39, 262144: 10000, 1 << 30: 10000} {
		if got := SharesToWeight(shares); got != want {
			t.Errorf("SharesToWeight(%d) = %d, want %d", shares, got, want)
		}
	}
}

// TestMkdirCgroup: missing parents are made, nothing outside the
// hierarchy.
func TestMkdirCgroup(t *testing.T) {
	root := filepath.Join(t.TempDir(), "memory")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	deep := filepath.Join(root, "a/b/c")
	if err := mkdirCgroup(root, deep, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(deep); err != nil {
		t.Errorf("parents not made: %v", err)
	}
	if err := mkdirCgroup(root, deep, false); err != nil {
		t.Errorf("existing cgroup: %v", err)
	}
	if err := mkdirCgroup(root, filepath.Join(filepath.Dir(root), "elsewhere", "x"), false); err == nil {
		t.Errorf("a dir outside the hierarchy was made")
	}
}

// TestInheritCpuset: a v1 cpuset cgroup starts empty (the kernel makes
// the files) and gets its parent's cpus and mems; set ones, other
// controllers' dirs and v2 ones are left alone.
func TestInheritCpuset(t *testing.T) {
	dir := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(p string) string {
		b, _ := os.ReadFile(filepath.Join(dir, p))
		return string(b)
	}
	for _, d := range []string{"v1/child", "set/child", "v2/child", "memory/child"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("v1/cpuset.cpus", "0-1\n")
	write("v1/cpuset.mems", "0\n")
	write("v1/child/cpuset.cpus", "\n")
	write("v1/child/cpuset.mems", "")
	write("set/cpuset.cpus", "0-1\n")
	write("set/cpuset.mems", "0\n")
	write("set/child/cpuset.cpus", "1\n")
	write("set/child/cpuset.mems", "0\n")
	write("v2/child/cgroup.controllers", "cpuset\n")
	write("v2/child/cpuset.cpus", "")
	for _, d := range []string{"v1", "set", "v2", "memory"} {
		if err := inheritCpuset(filepath.Join(dir, d), filepath.Join(dir, d, "child")); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
	for p, want := range map[string]string{
		"v1/child/cpuset.cpus": "0-1\n", "v1/child/cpuset.mems": "0\n",
		"set/child/cpuset.cpus": "1\n", "v2/child/cpuset.cpus": "",
	} {
		if got := read(p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
}

// TestEnsureCpusetHalfFilledParent: a parent cpuset cgroup with cpus but
// no mems (a start cut short between the two) is filled before its child
// copies from it; an empty mems refuses tasks.
func TestEnsureCpusetHalfFilledParent(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("cpuset.cpus", "0-1\n")
	write("cpuset.mems", "0\n")
	write("pod/cpuset.cpus", "0-1\n")
	write("pod/cpuset.mems", "\n")
	write("pod/child/cpuset.cpus", "")
	write("pod/child/cpuset.mems", "")
	if err := ensureCpuset(root, filepath.Join(root, "pod", "child")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"pod/cpuset.mems", "pod/child/cpuset.mems"} {
		if b, _ := os.ReadFile(filepath.Join(root, p)); string(b) != "0\n" {
			t.Errorf("%s = %q, want the root's", p, b)
		}
	}
}

// TestKindOf: a hierarchy's kind comes from the files its root has, not
// from its name.
func TestKindOf(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		files []string
		v2    bool
		want  kind
	}{
		"cpuset":           {[]string{"cpuset.cpus", "cgroup.procs"}, false, kind{cpuset: true}},
		"odd-name":         {[]string{"cpuset.cpus", "cpu.shares"}, false, kind{cpuset: true, shares: "cpu.shares"}},
		"cpu,cpuacct":      {[]string{"cpu.shares", "cpuacct.usage"}, false, kind{shares: "cpu.shares"}},
		"memory":           {[]string{"memory.limit_in_bytes"}, false, kind{}},
		"unified":          {[]string{"cgroup.controllers", "cgroup.subtree_control"}, false, kind{shares: weightIfOn}},
		"v2-by-the-caller": {nil, true, kind{shares: weightIfOn}},
	} {
		root := filepath.Join(dir, name)
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range tc.files {
			if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if got := kindOf(root, tc.v2); got != tc.want {
			t.Errorf("%s: kind %+v, want %+v", name, got, tc.want)
		}
	}
}
