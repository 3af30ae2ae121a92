package image

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/test/testimage"
)

// FuzzParseReference: any string either fails as InvalidArgument or
// normalizes to a reference that parses to itself.
func FuzzParseReference(f *testing.F) {
	for _, s := range []string{
		"busybox", "busybox:1.36", "library/busybox", "docker.io/library/busybox:latest",
		"127.0.0.1:5000/e2e/fs:v1", "localhost/x", "quay.io/a/b/c@sha256:" + strings.Repeat("ab", 32),
		"x:y@sha256:" + strings.Repeat("0", 64), "UPPER/case", "a//b", ":tag", "@sha256:", "sha256:abc",
		"a" + strings.Repeat("/b", 200), "host:99999/x", "[::1]:5000/x", "x\x00y", " busybox",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReference(s)
		if err != nil {
			if !errdefs.IsInvalid(err) {
				t.Fatalf("ParseReference(%q) error %v is not InvalidArgument", s, err)
			}
			return
		}
		n := r.String()
		if strings.ContainsAny(n, " \t\n\x00") {
			t.Fatalf("ParseReference(%q) = %q holds whitespace or NUL", s, n)
		}
		again, err := ParseReference(n)
		if err != nil || again.String() != n {
			t.Fatalf("ParseReference(%q) = %q, which parses to %q, %v", s, n, again.String(), err)
		}
		if norm, err := NormalizeReference(s); err != nil || norm != n {
			t.Fatalf("NormalizeReference(%q) = %q, %v; ParseReference gave %q", s, norm, err, n)
		}
	})
}

// FuzzLayerUnpack ingests arbitrary bytes as a layer (raw, or as a gzip or
// zstd stream) under a 64 KiB limit. Whatever the bytes hold, nothing may be
// written outside the image store's layer and temp dirs, an unpacked layer
// stays within the limit, and a refused layer leaves nothing.
func FuzzLayerUnpack(f *testing.F) {
	if os.Geteuid() != 0 {
		f.Skip("needs root (the unpacker makes whiteout devices and sets trusted xattrs)")
	}
	// Small limit and inputs: the fuzzing engine slows to a crawl on
	// inputs of megabytes.
	const limit = 64 << 10
	f.Add(layerTar(f, dir("a/"), file("a/b", "hello"), file("a/.wh.c", ""), file(".wh..wh..opq", "")), byte(0))
	f.Add(layerTar(f, entry{name: "l", typ: '2', link: "/etc"}, file("l/passwd", "x")), byte(0))
	f.Add(layerTar(f, entry{name: "up", typ: '2', link: "../../../.."}, file("up/escaped", "x")), byte(1))
	f.Add(layerTar(f, entry{name: "h", typ: '1', link: "../../outside"}), byte(2))
	f.Add(layerTar(f, file("../../escape", "x"), file("/abs", "y")), byte(0))
	f.Add(testimage.SparseTar("big", 1<<40, []byte("x")), byte(0))
	f.Add(testimage.SparseTar("small", 4096, []byte("x")), byte(1))
	f.Add(zeroTar(f, 100<<10), byte(2))
	f.Add([]byte("not a tar"), byte(0))

	e := newEnv(f)
	e.s.SetMaxLayerUnpackedBytes(limit)
	canary := filepath.Join(e.dir, "canary")
	if err := os.Mkdir(canary, 0o755); err != nil {
		f.Fatal(err)
	}
	outside := snapshotNames(f, e.dir, "/", e.root)
	f.Fuzz(func(t *testing.T, tarBytes []byte, comp byte) {
		blob := tarBytes
		switch comp % 3 {
		case 1:
			blob = gz(t, tarBytes)
		case 2:
			blob = zst(t, tarBytes)
		}
		in := e.s.NewIngest()
		res, err := in.Layer(context.Background(), LayerSpec{
			Blob: v1.Descriptor{Digest: sha(blob), Size: int64(len(blob))}, DiffID: sha(tarBytes),
		}, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil })
		if err == nil {
			if n := treeSize(t, e.s.layerDir(res.ChainID.String())); n > limit {
				t.Fatalf("unpacked layer holds %d bytes, more than the %d limit", n, limit)
			}
		} else if errors.Is(err, ErrLayerTooLarge) && !errors.Is(err, errdefs.ErrResourceExhausted) {
			t.Fatalf("limit error of the wrong kind: %v", err)
		}
		in.Close()
		if err := e.s.GC(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		for _, sub := range []string{"layers", "tmp", "content/blobs/sha256"} {
			if got, _ := os.ReadDir(filepath.Join(e.root, sub)); len(got) != 0 {
				t.Fatalf("%s holds %v after the ingest was collected (err %v)", sub, got, err)
			}
		}
		if now := snapshotNames(t, e.dir, "/", e.root); !slices.Equal(now, outside) {
			t.Fatalf("the layer wrote outside the image store: before %v, after %v", outside, now)
		}
	})
}

// snapshotNames lists the entries under dir (recursively, but not into
// skip) and the top-level entries of top.
func snapshotNames(t testing.TB, dir, top, skip string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if p == skip {
			return filepath.SkipDir
		}
		out = append(out, p)
		return nil
	})
	ents, _ := os.ReadDir(top)
	for _, x := range ents {
		out = append(out, filepath.Join(top, x.Name()))
	}
	return out
}

// treeSize sums the sizes of the files under dir.
func treeSize(t testing.TB, dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
