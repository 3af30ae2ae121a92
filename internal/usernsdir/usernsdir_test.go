package usernsdir

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

func owner(t *testing.T, p string) (uid, gid uint32, mode os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid, fi.Mode().Perm()
}

// TestLayout: the dir is root:root 0711, an entry root:<pod root gid>
// 0710, a pause rootfs owned by the pod's root; Remove and Sweep take
// entries away (not through symlinks the pod's root planted).
func TestLayout(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (chown)")
	}
	base := filepath.Join(t.TempDir(), "state-userns")
	d := New(base)
	if err := os.MkdirAll(base, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := d.Init(); err != nil {
		t.Fatal(err)
	}
	if u, g, m := owner(t, base); u != 0 || g != 0 || m != 0o711 {
		t.Errorf("dir: %d:%d %#o, want 0:0 0711", u, g, m)
	}
	rootfs, err := d.Make("c1", 100000, 100000, false)
	if err != nil {
		t.Fatal(err)
	}
	if rootfs != d.Rootfs("c1") || !d.Has("c1") || d.Has("c2") {
		t.Errorf("Make: %s, Has %v/%v", rootfs, d.Has("c1"), d.Has("c2"))
	}
	if u, g, m := owner(t, filepath.Dir(rootfs)); u != 0 || g != 100000 || m != 0o710 {
		t.Errorf("entry: %d:%d %#o, want 0:100000 0710", u, g, m)
	}
	if u, _, _ := owner(t, rootfs); u != 0 {
		t.Errorf("container mount point owned by %d, want root", u)
	}
	pause, err := d.Make("p1", 200000, 200001, true)
	if err != nil {
		t.Fatal(err)
	}
	if u, g, _ := owner(t, pause); u != 200000 || g != 200001 {
		t.Errorf("pause rootfs: %d:%d, want the pod's root", u, g)
	}
	if _, err := d.Make("p1", 1, 1, true); err == nil {
		t.Error("Make of an existing entry succeeded")
	}
	// The pod's root may plant a link to host files in a rootfs it owns.
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(victim), filepath.Join(pause, "link")); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove("p1"); err != nil || d.Has("p1") {
		t.Fatalf("Remove: %v, still there %v", err, d.Has("p1"))
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("Remove followed a symlink: %v", err)
	}
	if err := d.Remove("p1"); err != nil {
		t.Errorf("Remove of a missing entry: %v", err)
	}
	if _, err := d.Make("c2", 1, 1, false); err != nil {
		t.Fatal(err)
	}
	gone, err := d.Sweep(func(id string) bool { return id == "c2" })
	if err != nil || !slices.Equal(gone, []string{"c1"}) || !d.Has("c2") {
		t.Errorf("Sweep: removed %v, %v; c2 kept %v", gone, err, d.Has("c2"))
	}
	// Init tightens a dir loosened since.
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := d.Init(); err != nil {
		t.Fatal(err)
	}
	if _, _, m := owner(t, base); m != 0o711 {
		t.Errorf("after Init: %#o", m)
	}
}

// TestZero: the zero Dir has no entries and refuses to make one.
func TestZero(t *testing.T) {
	var d Dir
	if d.Has("x") {
		t.Error("zero Dir has an entry")
	}
	if _, err := d.Make("x", 1, 1, false); err == nil {
		t.Error("zero Dir made an entry")
	}
	if err := d.Remove("x"); err != nil {
		t.Error(err)
	}
	if gone, err := d.Sweep(func(string) bool { return false }); err != nil || gone != nil {
		t.Error(gone, err)
	}
}
