package image

import (
	"archive/tar"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/errdefs"
	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (whiteout char devices, trusted xattrs, overlay mounts)")
	}
}

// TestWhiteoutsOverlay imports an image whose upper layer deletes a file
// and a directory and makes a directory opaque, checks the overlay form in
// the layer dir, then mounts the layer dirs as an overlay and checks the
// merged view.
func TestWhiteoutsOverlay(t *testing.T) {
	requireRoot(t)
	e := newEnv(t)
	lower := rawLayer(layerTar(t,
		dir("a/"), file("a/keep", "keep"), file("a/gone", "gone"),
		dir("dir1/"), file("dir1/f", "f"), dir("dir1/sub/"), file("dir1/sub/g", "g"),
		dir("opq/"), file("opq/old1", "1"), file("opq/old2", "2"),
	))
	upper := zstdLayer(t, layerTar(t,
		dir("a/"), file("a/.wh.gone", ""),
		file(".wh.dir1", ""),
		dir("opq/"), file("opq/.wh..wh..opq", ""), file("opq/new", "new"),
		file("top", "top"),
	))
	img := makeImage(t, "wh", lower, upper)
	lpDir := filepath.Join(e.dir, "layout")
	writeOCILayout(t, lpDir, img, map[string]string{annotationRefName: "wh:1"})
	tarDir(t, lpDir, filepath.Join(e.dir, "wh.tar"))
	rec := importOne(t, e, filepath.Join(e.dir, "wh.tar"))
	dirs := e.s.LayerDirs(rec)
	up := dirs[1]

	for _, p := range []string{"a/gone", "dir1"} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(up, p), &st); err != nil {
			t.Fatalf("whiteout %s: %v", p, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
			t.Fatalf("whiteout %s is mode %o rdev %d, want char device 0/0", p, st.Mode, st.Rdev)
		}
	}
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(filepath.Join(up, "opq"), "trusted.overlay.opaque", buf)
	if err != nil || string(buf[:n]) != "y" {
		t.Fatalf("opaque xattr on opq: %q %v", buf[:n], err)
	}
	for _, p := range []string{"a/.wh.gone", ".wh.dir1", "opq/.wh..wh..opq"} {
		if _, err := os.Lstat(filepath.Join(up, p)); !os.IsNotExist(err) {
			t.Fatalf("tar whiteout marker %s left in the layer dir: %v", p, err)
		}
	}

	merged := filepath.Join(e.dir, "merged")
	if err := os.Mkdir(merged, 0o755); err != nil {
		t.Fatal(err)
	}
	// Overlay lowerdir lists the top layer first.
	rev := slices.Clone(dirs)
	slices.Reverse(rev)
	if err := unix.Mount("overlay", merged, "overlay", unix.MS_RDONLY, "lowerdir="+strings.Join(rev, ":")); err != nil {
		t.Fatalf("mount overlay: %v", err)
	}
	defer func() {
		if err := unix.Unmount(merged, 0); err != nil {
			t.Errorf("unmount overlay: %v", err)
		}
	}()
	var got []string
	err = filepath.WalkDir(merged, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != merged {
			rel, _ := filepath.Rel(merged, p)
			got = append(got, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a", "a/keep", "opq", "opq/new", "top"}
	if !slices.Equal(got, want) {
		t.Fatalf("merged view = %v, want %v", got, want)
	}
	if b, _ := os.ReadFile(filepath.Join(merged, "opq/new")); string(b) != "new" {
		t.Fatalf("opq/new = %q", b)
	}
}

// TestMaliciousLayers imports layers that try to write outside their dir.
// Each must fail (or, for an absolute symlink, stay inside the layer dir),
// record nothing and write nothing outside.
func TestMaliciousLayers(t *testing.T) {
	requireRoot(t)
	cases := []struct {
		name     string
		entries  func(canary string) []entry
		mustFail bool
	}{
		{"dotdot entry", func(string) []entry {
			return []entry{file("../../../../../../../../tmp-escape-pwned", "x"), file("../pwned", "x")}
		}, true},
		{"relative symlink escape then write", func(canary string) []entry {
			return []entry{{name: "link", typ: tar.TypeSymlink, link: "../../../../../../../../../../.." + canary}, file("link/pwned", "x")}
		}, true},
		{"hardlink to a file outside", func(canary string) []entry {
			return []entry{{name: "hl", typ: tar.TypeLink, link: "../../../../../../../../.." + canary + "/victim"}}
		}, true},
		{"absolute symlink then write", func(canary string) []entry {
			return []entry{{name: "abs", typ: tar.TypeSymlink, link: canary}, file("abs/pwned", "x")}
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			canary := filepath.Join(e.dir, "canary")
			if err := os.Mkdir(canary, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(canary, "victim"), []byte("victim"), 0o644); err != nil {
				t.Fatal(err)
			}
			bad := rawLayer(layerTar(t, c.entries(canary)...))
			img := makeImage(t, "evil", bad)
			arch := filepath.Join(e.dir, "evil.tar")
			writeDockerSave(t, arch, img, "evil:1")
			_, err := e.s.Import(context.Background(), arch)
			if c.mustFail {
				if err == nil {
					t.Fatal("import of an escaping layer succeeded")
				}
				if len(e.s.List()) != 0 {
					t.Fatal("an image was recorded")
				}
				for _, sub := range []string{"layers", "content/blobs/sha256", "tmp"} {
					if got := e.names(sub); len(got) != 0 {
						t.Fatalf("%s after a failed import = %v", sub, got)
					}
				}
				t.Logf("rejected: %v", err)
			} else if err == nil {
				// go-archive resolves absolute symlinks inside the layer
				// root: the write lands in the layer, never outside.
				rec, _ := e.s.Get("evil:1")
				inside := filepath.Join(e.s.LayerDirs(rec)[0], canary, "pwned")
				if _, err := os.Stat(inside); err != nil {
					t.Fatalf("write through an absolute symlink went neither inside the layer nor failed: %v", err)
				}
			}
			// Nothing appeared outside the layer dirs: not in the canary, not
			// next to the store, not in /.
			ents, _ := os.ReadDir(canary)
			if len(ents) != 1 {
				t.Fatalf("canary dir changed: %v", ents)
			}
			if b, _ := os.ReadFile(filepath.Join(canary, "victim")); string(b) != "victim" {
				t.Fatal("victim file changed")
			}
			for _, p := range []string{"/tmp-escape-pwned", filepath.Join(e.root, "pwned"), filepath.Join(e.root, "tmp", "pwned"), filepath.Join(e.dir, "pwned")} {
				if _, err := os.Lstat(p); err == nil {
					os.Remove(p)
					t.Fatalf("%s was written", p)
				}
			}
		})
	}
}

// A bad archive (not tar, or an archive entry escaping) is an invalid
// argument and leaves nothing.
func TestImportBadArchive(t *testing.T) {
	e := newEnv(t)
	p := filepath.Join(e.dir, "junk.tar")
	if err := os.WriteFile(p, []byte("this is not a tar archive at all, just some words to read"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Import(context.Background(), p); !errdefs.IsInvalid(err) {
		t.Fatalf("junk archive: %v", err)
	}
	evil := filepath.Join(e.dir, "evil-archive.tar")
	if err := os.WriteFile(evil, layerTar(t, file("../../outside-archive", "x"), file("manifest.json", "[]")), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Import(context.Background(), evil); !errdefs.IsInvalid(err) {
		t.Fatalf("escaping archive: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(e.root, "outside-archive")); err == nil {
		t.Fatal("archive entry escaped")
	}
	if _, err := e.s.Import(context.Background(), filepath.Join(e.dir, "missing.tar")); !errdefs.IsNotFound(err) {
		t.Fatalf("missing archive: %v", err)
	}
	if got := e.names("tmp"); len(got) != 0 {
		t.Fatalf("tmp = %v", got)
	}
}
