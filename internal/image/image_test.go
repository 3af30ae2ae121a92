package image

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/berth-project/berth/internal/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

func importOne(t *testing.T, e *testEnv, path string) *Image {
	t.Helper()
	imgs, err := e.s.Import(context.Background(), path)
	if err != nil {
		t.Fatalf("Import(%s): %v", path, err)
	}
	if len(imgs) != 1 {
		t.Fatalf("Import(%s) recorded %d images, want 1", path, len(imgs))
	}
	return imgs[0]
}

func TestImportDockerSaveAndLookup(t *testing.T) {
	e := newEnv(t)
	base := gzLayer(t, layerTar(t, dir("bin/"), file("bin/hello", "hello"), dir("etc/"), file("etc/os-release", "ID=test\n")))
	top := gzLayer(t, layerTar(t, file("etc/motd", "hi\n")))
	src := makeImage(t, "echo one", base, top)
	arch := filepath.Join(e.dir, "save.tar")
	writeDockerSave(t, arch, src, "busybox:latest", "127.0.0.1:5000/x:v1")

	img := importOne(t, e, arch)
	cfgName, _ := src.ConfigName()
	if img.ID != cfgName.String() {
		t.Fatalf("ID = %s, want config digest %s", img.ID, cfgName)
	}
	slices.Sort(img.RepoTags)
	if want := []string{"127.0.0.1:5000/x:v1", "docker.io/library/busybox:latest"}; !slices.Equal(img.RepoTags, want) {
		t.Fatalf("RepoTags = %v, want %v", img.RepoTags, want)
	}
	if len(img.RepoDigests) != 2 || !strings.HasPrefix(img.RepoDigests[0], "docker.io/library/busybox@sha256:") && !strings.HasPrefix(img.RepoDigests[1], "docker.io/library/busybox@sha256:") {
		t.Fatalf("RepoDigests = %v", img.RepoDigests)
	}
	c := img.Config.Config
	if !slices.Equal(c.Cmd, []string{"/bin/sh", "-c", "echo one"}) || c.WorkingDir != "/work" || c.User != "1000:1000" ||
		c.StopSignal != "SIGQUIT" || c.Labels["cmd"] != "echo one" || len(c.Volumes) != 1 || len(c.Env) != 2 {
		t.Fatalf("config not carried over: %+v", c)
	}
	// Size: compressed layers + config, like containerd.
	rawCfg, _ := src.RawConfigFile()
	want := int64(len(rawCfg))
	for _, l := range []v1.Layer{base, top} {
		sz, _ := l.Size()
		want += sz
	}
	if img.Size != want {
		t.Fatalf("Size = %d, want %d", img.Size, want)
	}
	dirs := e.s.LayerDirs(img)
	if len(dirs) != 2 || len(img.ChainIDs) != 2 {
		t.Fatalf("LayerDirs = %v", dirs)
	}
	if b, err := os.ReadFile(filepath.Join(dirs[0], "bin/hello")); err != nil || string(b) != "hello" {
		t.Fatalf("lowest layer dir content: %q %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(dirs[1], "etc/motd")); err != nil || string(b) != "hi\n" {
		t.Fatalf("upper layer dir content: %q %v", b, err)
	}
	if fi, err := os.Stat(dirs[0]); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("layer root mode: %v %v", fi.Mode(), err)
	}
	// Blobs: config, synthesized manifest, two layer blobs.
	if got := e.names("content/blobs/sha256"); len(got) != 4 {
		t.Fatalf("blobs = %v, want 4", got)
	}
	for _, b := range img.Blobs {
		if !e.s.HasBlob(mustParseHash(t, b)) {
			t.Fatalf("blob %s of the record is missing", b)
		}
	}
	if got := e.names("tmp"); len(got) != 0 {
		t.Fatalf("tmp not clean after import: %v", got)
	}

	hexID := strings.TrimPrefix(img.ID, "sha256:")
	var digestRef string
	for _, d := range img.RepoDigests {
		if strings.HasPrefix(d, "docker.io/") {
			digestRef = d
		}
	}
	for _, ref := range []string{
		img.ID, hexID, hexID[:12], hexID[:20],
		"busybox", "busybox:latest", "library/busybox", "docker.io/library/busybox:latest", "index.docker.io/library/busybox",
		"127.0.0.1:5000/x:v1", digestRef, "busybox@" + strings.SplitN(digestRef, "@", 2)[1],
	} {
		got, err := e.s.Get(ref)
		if err != nil {
			t.Errorf("Get(%q): %v", ref, err)
		} else if got.ID != img.ID {
			t.Errorf("Get(%q) = %s, want %s", ref, got.ID, img.ID)
		}
	}
	for _, ref := range []string{"busybox:other", "alpine", "127.0.0.1:5000/x", "sha256:" + strings.Repeat("0", 64), strings.Repeat("0", 64), "busybox@sha256:" + strings.Repeat("1", 64)} {
		if _, err := e.s.Get(ref); !errdefs.IsNotFound(err) {
			t.Errorf("Get(%q) = %v, want not found", ref, err)
		}
	}
	for _, ref := range []string{"Busybox", "foo::bar", "", "sha256:abc"} {
		_, err := e.s.Get(ref)
		if !errdefs.IsInvalid(err) {
			t.Errorf("Get(%q) = %v, want invalid argument", ref, err)
		} else if ref != "" && !strings.Contains(err.Error(), ref) {
			t.Errorf("Get(%q) error %q does not name the reference", ref, err)
		}
	}
	// List returns copies.
	l := e.s.List()
	if len(l) != 1 {
		t.Fatalf("List = %d images", len(l))
	}
	l[0].RepoTags[0] = "mutated"
	if g, _ := e.s.Get(img.ID); slices.Contains(g.RepoTags, "mutated") {
		t.Fatal("List handed out the stored record, not a copy")
	}
	// ImportImage (the admin interface) returns the id.
	ids, err := e.s.ImportImage(context.Background(), arch)
	if err != nil || !slices.Equal(ids, []string{img.ID}) {
		t.Fatalf("ImportImage = %v, %v", ids, err)
	}
	// A re-import unpacked nothing new.
	if n := e.s.unpacks.Load(); n != 2 {
		t.Fatalf("layers unpacked %d times, want 2", n)
	}
}

func mustParseHash(t *testing.T, s string) v1.Hash {
	t.Helper()
	h, err := v1.NewHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestTagsMoveAndAccumulate(t *testing.T) {
	e := newEnv(t)
	base := gzLayer(t, layerTar(t, file("a", "a")))
	one := makeImage(t, "one", base)
	two := makeImage(t, "two", base)
	three := makeImage(t, "three", base)
	p := func(n string) string { return filepath.Join(e.dir, n) }
	writeDockerSave(t, p("one-a.tar"), one, "app:a")
	writeDockerSave(t, p("one-b.tar"), one, "app:b")
	writeDockerSave(t, p("two-a.tar"), two, "app:a")
	writeDockerSave(t, p("three-b.tar"), three, "app:b")

	i1 := importOne(t, e, p("one-a.tar"))
	i1b := importOne(t, e, p("one-b.tar"))
	if i1b.ID != i1.ID || len(i1b.RepoTags) != 2 {
		t.Fatalf("re-import under another tag: %+v", i1b.RepoTags)
	}
	i2 := importOne(t, e, p("two-a.tar"))
	got1, _ := e.s.Get(i1.ID)
	if !slices.Equal(got1.RepoTags, []string{"docker.io/library/app:b"}) {
		t.Fatalf("old image tags after the tag moved: %v", got1.RepoTags)
	}
	if g, _ := e.s.Get("app:a"); g.ID != i2.ID {
		t.Fatalf("app:a -> %s, want %s", g.ID, i2.ID)
	}
	importOne(t, e, p("three-b.tar"))
	got1, err := e.s.Get(i1.ID)
	if err != nil {
		t.Fatalf("image left without tags must stay listed by id: %v", err)
	}
	if len(got1.RepoTags) != 0 || len(got1.RepoDigests) == 0 {
		t.Fatalf("untagged image: tags %v digests %v", got1.RepoTags, got1.RepoDigests)
	}
	if len(e.s.List()) != 3 {
		t.Fatalf("List = %d, want 3", len(e.s.List()))
	}
	// The shared base layer was unpacked once.
	if n := e.s.unpacks.Load(); n != 1 {
		t.Fatalf("unpacked %d layers, want 1", n)
	}
}

func TestRemoveAndGC(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	base := gzLayer(t, layerTar(t, file("base", "b")))
	onlyA := gzLayer(t, layerTar(t, file("a", "a")))
	onlyB := zstdLayer(t, layerTar(t, file("b", "b")))
	a := makeImage(t, "a", base, onlyA)
	b := makeImage(t, "b", base, onlyB)
	writeDockerSave(t, filepath.Join(e.dir, "a.tar"), a, "a:1", "a:2")
	lpDir := filepath.Join(e.dir, "b-layout")
	writeOCILayout(t, lpDir, b, map[string]string{annotationContainerdName: "docker.io/library/b:1", annotationRefName: "1"})
	tarDir(t, lpDir, filepath.Join(e.dir, "b.tar"))

	ia := importOne(t, e, filepath.Join(e.dir, "a.tar"))
	ib := importOne(t, e, filepath.Join(e.dir, "b.tar"))
	if !slices.Equal(ib.RepoTags, []string{"docker.io/library/b:1"}) {
		t.Fatalf("OCI layout tags = %v", ib.RepoTags)
	}
	if got := e.names("layers"); len(got) != 3 {
		t.Fatalf("layers = %v, want 3 (base shared)", got)
	}
	// Remove by one tag removes the whole image with all its names.
	if err := e.s.Remove(ctx, "a:1", nil); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"a:1", "a:2", ia.ID} {
		if _, err := e.s.Get(ref); !errdefs.IsNotFound(err) {
			t.Fatalf("Get(%s) after remove: %v", ref, err)
		}
	}
	if got := e.names("layers"); len(got) != 2 {
		t.Fatalf("layers after removing a = %v, want base + b's", got)
	}
	for _, c := range ib.ChainIDs {
		if _, err := os.Stat(e.s.layerDir(c)); err != nil {
			t.Fatalf("layer of b was collected: %v", err)
		}
	}
	if got, want := len(e.names("content/blobs/sha256")), len(ib.Blobs); got != want {
		t.Fatalf("blobs after removing a = %d, want b's %d", got, want)
	}
	// Idempotent.
	if err := e.s.Remove(ctx, "a:1", nil); err != nil {
		t.Fatalf("second remove: %v", err)
	}
	if err := e.s.Remove(ctx, "Bad::ref", nil); !errdefs.IsInvalid(err) {
		t.Fatalf("remove of a bad ref: %v", err)
	}
	// A container still uses b's top layer: it survives b's removal.
	inUse := ib.ChainIDs[1]
	if err := e.s.Remove(ctx, ib.ID[:19], func(c string) bool { return c == inUse }); err != nil {
		t.Fatal(err)
	}
	if got := e.names("layers"); !slices.Equal(got, []string{strings.TrimPrefix(inUse, "sha256:")}) {
		t.Fatalf("layers with one in use = %v", got)
	}
	if err := e.s.GC(ctx, func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if got := e.names("layers"); len(got) != 0 {
		t.Fatalf("layers after all removed = %v", got)
	}
	if got := e.names("content/blobs/sha256"); len(got) != 0 {
		t.Fatalf("blobs after all removed = %v", got)
	}
	if got := e.names("tmp"); len(got) != 0 {
		t.Fatalf("tmp after GC = %v", got)
	}
	if len(e.s.List()) != 0 {
		t.Fatal("records left")
	}
}

func TestCorruptBlobRecordsNothing(t *testing.T) {
	e := newEnv(t)
	lower := gzLayer(t, layerTar(t, file("ok", "ok")))
	upper := gzLayer(t, layerTar(t, file("bad", strings.Repeat("x", 4096))))
	img := makeImage(t, "corrupt", lower, upper)
	lpDir := filepath.Join(e.dir, "layout")
	writeOCILayout(t, lpDir, img, map[string]string{annotationRefName: "docker.io/library/corrupt:1"})
	// Replace the upper layer blob by other valid gzip content of another
	// layer: it unpacks fine, only the digests tell.
	d, _ := upper.Digest()
	other, _ := gzLayer(t, layerTar(t, file("evil", "evil"))).Compressed()
	otherBytes, _ := io.ReadAll(other)
	if err := os.WriteFile(filepath.Join(lpDir, "blobs", "sha256", d.Hex), otherBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	tarDir(t, lpDir, filepath.Join(e.dir, "corrupt.tar"))
	_, err := e.s.Import(context.Background(), filepath.Join(e.dir, "corrupt.tar"))
	if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("import of a corrupt blob: %v", err)
	}
	if len(e.s.List()) != 0 {
		t.Fatal("corrupt import recorded an image")
	}
	for _, sub := range []string{"layers", "content/blobs/sha256", "tmp"} {
		if got := e.names(sub); len(got) != 0 {
			t.Fatalf("%s after a failed import = %v", sub, got)
		}
	}

	// Straight through the ingest API: a wrong diff ID discards everything.
	in := e.s.NewIngest()
	tb := layerTar(t, file("x", "x"))
	_, err = in.Layer(context.Background(), LayerSpec{DiffID: mustParseHash(t, "sha256:"+strings.Repeat("ab", 32))},
		func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tb)), nil })
	in.Close()
	if !errdefs.IsInvalid(err) {
		t.Fatalf("wrong diff ID: %v", err)
	}
	for _, sub := range []string{"layers", "content/blobs/sha256", "tmp"} {
		if got := e.names(sub); len(got) != 0 {
			t.Fatalf("%s after a failed ingest = %v", sub, got)
		}
	}
}

func TestRestartKeepsRecords(t *testing.T) {
	e := newEnv(t)
	img := makeImage(t, "persist", rawLayer(layerTar(t, file("f", "f"))))
	writeDockerSave(t, filepath.Join(e.dir, "p.tar"), img, "persist:1")
	rec := importOne(t, e, filepath.Join(e.dir, "p.tar"))
	if err := e.s.SetPinned("persist:1", true); err != nil {
		t.Fatal(err)
	}
	e.close()
	// Leftovers of a crash.
	if err := os.MkdirAll(filepath.Join(e.root, "tmp", "layer-123", "usr"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.open()
	got, err := e.s.Get("persist:1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != rec.ID || !got.Pinned || !slices.Equal(got.ChainIDs, rec.ChainIDs) || got.Config.Config.Cmd[2] != "persist" {
		t.Fatalf("record after restart = %+v", got)
	}
	if _, err := os.Stat(filepath.Join(e.s.LayerDirs(got)[0], "f")); err != nil {
		t.Fatal(err)
	}
	if left := e.names("tmp"); len(left) != 0 {
		t.Fatalf("crash leftovers not removed: %v", left)
	}
}

func TestConcurrentImportsShareLayer(t *testing.T) {
	e := newEnv(t)
	big := make([]byte, 4<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	base := gzLayer(t, layerTar(t, file("big", string(big))))
	var paths []string
	for i, cmd := range []string{"x", "y", "z"} {
		p := filepath.Join(e.dir, cmd+".tar")
		writeDockerSave(t, p, makeImage(t, cmd, base), "c:"+string(rune('0'+i)))
		paths = append(paths, p)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(paths))
	for i, p := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.s.Import(context.Background(), p)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := e.s.unpacks.Load(); n != 1 {
		t.Fatalf("shared layer unpacked %d times", n)
	}
	if len(e.s.List()) != 3 || len(e.names("layers")) != 1 {
		t.Fatalf("images %d layers %v", len(e.s.List()), e.names("layers"))
	}
}

func TestOCIIndexPicksPlatform(t *testing.T) {
	e := newEnv(t)
	mine := makeImage(t, "mine", gzLayer(t, layerTar(t, file("mine", "1"))))
	other := makeImage(t, "other", gzLayer(t, layerTar(t, file("other", "2"))))
	arch := runtimeArch()
	otherArch := "s390x"
	if arch == otherArch {
		otherArch = "amd64"
	}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: otherArch}}},
		mutate.IndexAddendum{Add: mine, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}},
	)
	lpDir := filepath.Join(e.dir, "idx")
	lp, err := layout.Write(lpDir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{annotationRefName: "example.com/multi:v1"})); err != nil {
		t.Fatal(err)
	}
	tarDir(t, lpDir, filepath.Join(e.dir, "idx.tar"))
	img := importOne(t, e, filepath.Join(e.dir, "idx.tar"))
	wantID, _ := mine.ConfigName()
	if img.ID != wantID.String() {
		t.Fatalf("picked %s, want this platform's %s", img.ID, wantID)
	}
	idxDigest, _ := idx.Digest()
	if !slices.Equal(img.RepoDigests, []string{"example.com/multi@" + idxDigest.String()}) {
		t.Fatalf("RepoDigests = %v, want the index digest", img.RepoDigests)
	}
	if _, err := e.s.Get("example.com/multi@" + idxDigest.String()); err != nil {
		t.Fatal(err)
	}
	if len(e.names("layers")) != 1 {
		t.Fatalf("layers = %v: the other platform was unpacked", e.names("layers"))
	}
}

func TestFsInfo(t *testing.T) {
	e := newEnv(t)
	e.s.updateUsage()
	emptyBytes, emptyInodes, mp := e.s.FsInfo()
	if mp != e.root {
		t.Fatalf("mountpoint = %s", mp)
	}
	img := makeImage(t, "fs", gzLayer(t, layerTar(t, file("one", strings.Repeat("1", 100000)), file("two", "2"))))
	writeDockerSave(t, filepath.Join(e.dir, "fs.tar"), img, "fs:1")
	importOne(t, e, filepath.Join(e.dir, "fs.tar"))
	e.s.updateUsage()
	b, n, _ := e.s.FsInfo()
	if b < emptyBytes+100000 || n < emptyInodes+6 {
		t.Fatalf("usage after import: %d bytes %d inodes (empty: %d, %d)", b, n, emptyBytes, emptyInodes)
	}
	if err := e.s.Remove(context.Background(), "fs:1", nil); err != nil {
		t.Fatal(err)
	}
	e.s.updateUsage()
	if b2, n2, _ := e.s.FsInfo(); b2 != emptyBytes || n2 != emptyInodes {
		t.Fatalf("usage after remove: %d bytes %d inodes, want %d %d", b2, n2, emptyBytes, emptyInodes)
	}
}

// Configured pinned refs pin what they name at each read: tags, ids and
// short names, following a tag that moves; RemoveImage still removes.
func TestPinnedRefs(t *testing.T) {
	e := newEnv(t)
	a := makeImage(t, "a", rawLayer(layerTar(t, file("a", "a"))))
	b := makeImage(t, "b", rawLayer(layerTar(t, file("b", "b"))))
	writeDockerSave(t, filepath.Join(e.dir, "a.tar"), a, "registry.test/pause:3.10", "other:1")
	writeDockerSave(t, filepath.Join(e.dir, "b.tar"), b, "busybox:latest")
	recA := importOne(t, e, filepath.Join(e.dir, "a.tar"))
	recB := importOne(t, e, filepath.Join(e.dir, "b.tar"))
	pinned := func() map[string]bool {
		m := map[string]bool{}
		for _, img := range e.s.List() {
			m[img.ID] = img.Pinned
		}
		return m
	}
	if p := pinned(); p[recA.ID] || p[recB.ID] {
		t.Fatalf("pinned before any pinned refs: %v", p)
	}

	e.s.SetPinnedRefs([]string{"registry.test/pause:3.10", "docker.io/library/busybox", "nothing:here"})
	if p := pinned(); !p[recA.ID] || !p[recB.ID] {
		t.Fatalf("List: %v, want both pinned (full tag; busybox by its normalized name)", p)
	}
	// Get by any of the image's names reports the pin.
	if got, err := e.s.Get("other:1"); err != nil || !got.Pinned {
		t.Fatalf("Get(other:1) = %+v, %v; want pinned", got, err)
	}

	// By id; the tag moves to image b, and the pin with it.
	e.s.SetPinnedRefs([]string{recA.ID})
	if p := pinned(); !p[recA.ID] || p[recB.ID] {
		t.Fatalf("pinned by id: %v", p)
	}
	e.s.SetPinnedRefs([]string{"other:1"})
	writeDockerSave(t, filepath.Join(e.dir, "b2.tar"), b, "other:1")
	importOne(t, e, filepath.Join(e.dir, "b2.tar"))
	if p := pinned(); p[recA.ID] || !p[recB.ID] {
		t.Fatalf("after the pinned tag moved: %v, want only b pinned", p)
	}

	// Pinning keeps kubelet's GC away, not the user's RemoveImage.
	if err := e.s.Remove(context.Background(), "other:1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Get(recB.ID); !errdefs.IsNotFound(err) {
		t.Fatalf("pinned image after RemoveImage: %v", err)
	}
}
