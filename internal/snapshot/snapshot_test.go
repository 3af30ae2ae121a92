package snapshot

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPrepareNeedsLayers(t *testing.T) {
	dir := t.TempDir()
	if err := Prepare(filepath.Join(dir, "snap"), filepath.Join(dir, "rootfs"), nil, nil); err == nil {
		t.Fatal("Prepare with no layers succeeded")
	}
}

// A real overlay (as root): upper layers win, writes land in the upper dir
// only, and teardown can be repeated.
func TestPrepareWriteRemove(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root to mount overlayfs (run the suite as root)")
	}
	dir := t.TempDir()
	low, high := filepath.Join(dir, "l1"), filepath.Join(dir, "l2")
	for p, content := range map[string]string{
		filepath.Join(low, "a"): "low", filepath.Join(low, "b"): "low", filepath.Join(high, "a"): "high",
	} {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	snap, rootfs := filepath.Join(dir, "snap"), filepath.Join(dir, "rootfs")
	if err := Prepare(snap, rootfs, []string{low, high}, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Unmount(rootfs) })
	if !IsMounted(rootfs) {
		t.Fatal("rootfs is not a mount point after Prepare")
	}
	for name, want := range map[string]string{"a": "high", "b": "low"} {
		if got, _ := os.ReadFile(filepath.Join(rootfs, name)); string(got) != want {
			t.Errorf("%s = %q, want %q (layers lowest first)", name, got, want)
		}
	}
	if err := os.WriteFile(filepath.Join(rootfs, "c"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(snap, "upper", "c")); err != nil {
		t.Errorf("write did not land in the upper dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(high, "c")); err == nil {
		t.Error("write reached an image layer")
	}
	if err := Remove(snap, rootfs); err != nil {
		t.Fatal(err)
	}
	if IsMounted(rootfs) {
		t.Fatal("rootfs still mounted after Remove")
	}
	if _, err := os.Stat(snap); !os.IsNotExist(err) {
		t.Fatalf("snapshot dir left: %v", err)
	}
	if err := Remove(snap, rootfs); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
}

// ResolveIn resolves a sub path inside root, with the image's symlinks
// confined to it: an absolute link leads to root's own dir, not the host's.
func TestResolveIn(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"data/sub", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc", filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	for sub, want := range map[string]string{"data/sub": "data/sub", "escape": "etc", "data/../etc": "etc"} {
		got, err := ResolveIn(root, sub)
		if err != nil || got != filepath.Join(root, want) {
			t.Errorf("ResolveIn(%q) = %q, %v; want %s", sub, got, err, filepath.Join(root, want))
		}
	}
	if _, err := ResolveIn(root, "nope"); err == nil {
		t.Errorf("a missing sub path resolved")
	}
}

// TestMountImageOneLayer: an image volume of a single layer dir (an OCI
// artifact's files) is a read-only mount of that dir, and of several an
// overlay; overlayfs alone refuses one lower dir without an upper.
func TestMountImageOneLayer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root to mount (run the suite as root)")
	}
	dir := t.TempDir()
	layer := filepath.Join(dir, "files")
	if err := os.MkdirAll(filepath.Join(layer, "conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(layer, "conf", "a"), []byte("a\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	for name, lowers := range map[string][]string{"one": {layer}, "two": {layer, layer + "2"}} {
		os.MkdirAll(layer+"2", 0o755)
		target := filepath.Join(dir, "vol-"+name)
		if err := MountImage(target, lowers, nil, filepath.Join(dir, "scratch-"+name)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(func() { Unmount(target) })
		if b, err := os.ReadFile(filepath.Join(target, "conf", "a")); err != nil || string(b) != "a\n" {
			t.Errorf("%s: read through the mount: %q, %v", name, b, err)
		}
		if err := os.WriteFile(filepath.Join(target, "new"), nil, 0o644); err == nil {
			t.Errorf("%s: the image volume is writable", name)
		}
		if p, err := ResolveIn(target, "conf/a"); err != nil || p != filepath.Join(target, "conf", "a") {
			t.Errorf("%s: ResolveIn(conf/a) = %q, %v", name, p, err)
		}
		if err := Unmount(target); err != nil || IsMounted(target) {
			t.Errorf("%s: unmount: %v", name, err)
		}
	}
}
