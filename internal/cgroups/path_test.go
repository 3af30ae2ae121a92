package cgroups

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/berth-project/berth/internal/errdefs"
)

func TestContainerPath(t *testing.T) {
	const id = "abc123"
	cases := []struct {
		driver, parent string
		want           string
		invalid        bool
	}{
		// cgroupfs: kubelet's paths, the default parent, the root.
		{DriverCgroupfs, "/kubepods/burstable/pod1234", "/kubepods/burstable/pod1234/abc123", false},
		{DriverCgroupfs, "/kubepods/pod1234/", "/kubepods/pod1234/abc123", false},
		{DriverCgroupfs, "/berth", "/berth/abc123", false},
		{DriverCgroupfs, "", "/abc123", false},
		{"", "/berth", "/berth/abc123", false},
		// cgroupfs given a slice: the directories systemd would use.
		{DriverCgroupfs, "kubepods-burstable-pod1234.slice", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/abc123", false},
		{DriverCgroupfs, "kubepods.slice", "/kubepods.slice/abc123", false},
		{DriverCgroupfs, "kubepods/../../etc", "", true},
		{DriverCgroupfs, "/kubepods/../../etc", "", true},
		{DriverCgroupfs, "relative/path", "", true},
		{DriverCgroupfs, "bad--name.slice", "", true},
		// systemd: runc's slice:prefix:name.
		{DriverSystemd, "kubepods-burstable-pod1234.slice", "kubepods-burstable-pod1234.slice:berth:abc123", false},
		{DriverSystemd, "kubepods.slice", "kubepods.slice:berth:abc123", false},
		{DriverSystemd, "", "-.slice:berth:abc123", false},
		{DriverSystemd, "/kubepods/burstable/pod1234", "", true},
		{DriverSystemd, "a/b.slice", "", true},
		{DriverSystemd, "-kubepods.slice", "", true},
		{DriverSystemd, "kubepods-.slice", "", true},
	}
	for _, tc := range cases {
		got, err := ContainerPath(tc.driver, tc.parent, id)
		if tc.invalid {
			if !errdefs.IsInvalid(err) {
				t.Errorf("ContainerPath(%q, %q) = %q, %v; want an invalid-argument error", tc.driver, tc.parent, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ContainerPath(%q, %q) = %q, %v; want %q", tc.driver, tc.parent, got, err, tc.want)
		}
	}
	if _, err := ContainerPath("nope", "/x", id); err == nil {
		t.Error("unknown driver accepted")
	}
	for _, bad := range []string{"", "a/b", "a:b"} {
		if _, err := ContainerPath(DriverCgroupfs, "/x", bad); err == nil {
			t.Errorf("id %q accepted", bad)
		}
	}
}

func TestExpandSlice(t *testing.T) {
	for in, want := range map[string]string{
		"-.slice":        "/",
		"system.slice":   "/system.slice",
		"a-b-c.slice":    "/a.slice/a-b.slice/a-b-c.slice",
		"kubepods.slice": "/kubepods.slice",
	} {
		if got, err := ExpandSlice(in); err != nil || got != want {
			t.Errorf("ExpandSlice(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"a", ".slice", "a--b.slice", "a/b.slice"} {
		if _, err := ExpandSlice(bad); err == nil {
			t.Errorf("ExpandSlice(%q) accepted", bad)
		}
	}
}

// TestDirsFakeTree checks where a cgroupfs path lands on a v1 (one
// directory per controller, plus the unified one of hybrid hosts) and a v2
// (single tree) layout, and that Remove of a systemd path touches nothing.
func TestDirsFakeTree(t *testing.T) {
	v1 := t.TempDir()
	for _, c := range []string{"cpu", "memory", "pids", "unified"} {
		if err := os.Mkdir(filepath.Join(v1, c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Joined controllers appear as symlinks; they are not separate trees.
	if err := os.Symlink("cpu", filepath.Join(v1, "cpuacct")); err != nil {
		t.Fatal(err)
	}
	got := dirsIn(v1, "/kubepods/pod1/c1", false)
	want := []string{
		filepath.Join(v1, "cpu/kubepods/pod1/c1"),
		filepath.Join(v1, "memory/kubepods/pod1/c1"),
		filepath.Join(v1, "pids/kubepods/pod1/c1"),
		filepath.Join(v1, "unified/kubepods/pod1/c1"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("v1 dirs %q, want %q", got, want)
	}

	v2 := t.TempDir()
	if got := dirsIn(v2, "/kubepods/pod1/c1", true); !slices.Equal(got, []string{filepath.Join(v2, "kubepods/pod1/c1")}) {
		t.Errorf("v2 dirs %q", got)
	}
	if got := dirsIn(v2, "kubepods.slice:berth:c1", true); got != nil {
		t.Errorf("systemd path gave dirs %q", got)
	}
	if got := dirsIn(v2, "", true); got != nil {
		t.Errorf("empty path gave dirs %q", got)
	}
}

func TestExpandSystemdPath(t *testing.T) {
	for in, want := range map[string]string{
		"kubepods-besteffort-pod12.slice:berth:abc": "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/berth-abc.scope",
		"system.slice:berth:abc":                    "/system.slice/berth-abc.scope",
		"-.slice:berth:abc":                         "/berth-abc.scope",
		":berth:abc":                                "/berth-abc.scope",
		"kubepods.slice:berth:kubepods-a.slice":     "/kubepods.slice/kubepods-a.slice",
		"/kubepods/pod1/abc":                        "/kubepods/pod1/abc",
		"kubepods-besteffort-pod12.slice":           "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice",
		// Names systemd refuses are left for the reader to reject.
		"a--b.slice":         "a--b.slice",
		"a--b.slice:berth:x": "a--b.slice:berth:x",
		"a.slice:berth":      "a.slice:berth",
	} {
		if got := ExpandSystemdPath(in); got != want {
			t.Errorf("ExpandSystemdPath(%q) = %q, want %q", in, got, want)
		}
	}
}
