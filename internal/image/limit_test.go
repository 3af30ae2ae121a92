package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/test/testimage"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func sha(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zst(t testing.TB, b []byte) []byte {
	w, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	return w.EncodeAll(b, nil)
}

// zeroTar is a tar of one file of n zero bytes.
func zeroTar(t testing.TB, n int) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(n)}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestTarGuardRefusesBeforeTheParser checks the lockstep: the header of an
// oversized (sparse) entry never reaches a tar reader behind the guard, so
// an unpacker behind it never creates the file.
func TestTarGuardRefusesBeforeTheParser(t *testing.T) {
	bomb := testimage.SparseTar("big", 1<<40, []byte("tail"))
	if len(bomb) > 8<<10 {
		t.Fatalf("sparse tar is %d bytes; want a few KiB", len(bomb))
	}
	g := newTarGuard(1<<30, DefaultMaxLayerEntries, "layer test")
	tr := tar.NewReader(io.TeeReader(bytes.NewReader(bomb), g))
	hdr, err := tr.Next()
	if err == nil {
		t.Fatalf("parser behind the guard got the header %q (%d bytes)", hdr.Name, hdr.Size)
	}
	if !errors.Is(err, ErrLayerTooLarge) || !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Fatalf("err = %v, want ErrLayerTooLarge", err)
	}
	if !strings.Contains(err.Error(), `"big"`) || !strings.Contains(err.Error(), "1099511627776") {
		t.Errorf("err %q should name the entry and its size", err)
	}
	if err := g.Close(); !errors.Is(err, ErrLayerTooLarge) {
		t.Fatalf("Close = %v", err)
	}

	// The same file under a larger limit passes, and the guard counts it
	// at its logical size.
	g = newTarGuard(2<<40, DefaultMaxLayerEntries, "layer test")
	tr = tar.NewReader(io.TeeReader(bytes.NewReader(bomb), g))
	if hdr, err = tr.Next(); err != nil || hdr.Size != 1<<40 {
		t.Fatalf("Next = %v, %v", hdr, err)
	}
	if err := g.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if g.declared != 1<<40+tarEntryCost {
		t.Fatalf("declared = %d", g.declared)
	}
}

// TestLayerBombs ingests layers that unpack to more than the limit: each
// fails with ResourceExhausted naming the layer, and leaves nothing.
func TestLayerBombs(t *testing.T) {
	const limit = 1 << 20
	many := func() []byte {
		var entries []entry
		for i := range 3000 { // 3000 * 512 bytes of entry cost > 1 MiB
			entries = append(entries, file(fmt.Sprintf("f%d", i), ""))
		}
		return layerTar(t, entries...)
	}
	dirs := func() []byte {
		var entries []entry
		for i := range 300 { // 300 * 4 KiB > 1 MiB; 300 * 512 bytes would not be
			entries = append(entries, dir(fmt.Sprintf("d%d/", i)))
		}
		return layerTar(t, entries...)
	}
	trailing := append(layerTar(t, file("ok", "ok")), make([]byte, 8<<20)...)
	cases := []struct {
		name     string
		tar      []byte
		compress func(testing.TB, []byte) []byte
	}{
		{"sparse 1 TiB", testimage.SparseTar("big", 1<<40, []byte("end")), nil},
		{"sparse 1 TiB gzip", testimage.SparseTar("big", 1<<40, []byte("end")), gz},
		{"gzip bomb", zeroTar(t, 16<<20), gz},
		{"zstd bomb", zeroTar(t, 16<<20), zst},
		{"zeros after the end marker", trailing, zst},
		{"many empty files", many(), gz},
		{"many empty dirs", dirs(), gz},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.s.SetMaxLayerUnpackedBytes(limit)
			blob := c.tar
			if c.compress != nil {
				blob = c.compress(t, c.tar)
			}
			t.Logf("blob %d bytes, tar %d bytes", len(blob), len(c.tar))
			in := e.s.NewIngest()
			_, err := in.Layer(context.Background(), LayerSpec{
				Blob:   v1.Descriptor{Digest: sha(blob), Size: int64(len(blob))},
				DiffID: sha(c.tar),
			}, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil })
			in.Close()
			if !errors.Is(err, errdefs.ErrResourceExhausted) {
				t.Fatalf("Layer = %v, want ResourceExhausted", err)
			}
			if !strings.Contains(err.Error(), sha(blob).String()) || !strings.Contains(err.Error(), "max_layer_unpacked_bytes") {
				t.Errorf("error %q should name the layer blob and the setting", err)
			}
			for _, sub := range []string{"layers", "content/blobs/sha256", "tmp"} {
				if got := e.names(sub); len(got) != 0 {
					t.Fatalf("%s after a refused layer = %v", sub, got)
				}
			}
		})
	}

	// Just under the limit is fine.
	e := newEnv(t)
	e.s.SetMaxLayerUnpackedBytes(limit)
	ok := zeroTar(t, limit/2)
	blob := zst(t, ok)
	in := e.s.NewIngest()
	defer in.Close()
	if _, err := in.Layer(context.Background(), LayerSpec{Blob: v1.Descriptor{Digest: sha(blob), Size: int64(len(blob))}, DiffID: sha(ok)},
		func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil }); err != nil {
		t.Fatalf("layer under the limit: %v", err)
	}
}

// TestLayerEntryCap: a layer with more entries than
// images.max_layer_entries fails with ResourceExhausted naming the setting;
// one with exactly that many is unpacked.
func TestLayerEntryCap(t *testing.T) {
	const max = 100
	layer := func(n int) []byte {
		var entries []entry
		for i := range n {
			entries = append(entries, file(fmt.Sprintf("f%d", i), ""))
		}
		return layerTar(t, entries...)
	}
	for _, n := range []int{max, max + 1} {
		e := newEnv(t)
		e.s.SetMaxLayerEntries(max)
		tb := layer(n)
		in := e.s.NewIngest()
		_, err := in.Layer(context.Background(), LayerSpec{Blob: v1.Descriptor{Digest: sha(tb), Size: int64(len(tb))}, DiffID: sha(tb)},
			func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tb)), nil })
		in.Close()
		if n <= max {
			if err != nil {
				t.Fatalf("%d entries: %v", n, err)
			}
			continue
		}
		if !errors.Is(err, errdefs.ErrResourceExhausted) || !errors.Is(err, ErrLayerTooLarge) ||
			!strings.Contains(err.Error(), "images.max_layer_entries (100)") || !strings.Contains(err.Error(), sha(tb).String()) {
			t.Fatalf("%d entries: err = %v, want ResourceExhausted naming the layer and max_layer_entries", n, err)
		}
		for _, sub := range []string{"layers", "content/blobs/sha256", "tmp"} {
			if got := e.names(sub); len(got) != 0 {
				t.Fatalf("%s after a refused layer = %v", sub, got)
			}
		}
	}
}

// TestLayerWrongBlobDigest: a layer whose tar is fine but whose compressed
// bytes are not what the manifest names is unpacked into tmp only and
// removed; nothing reaches layers/ or the content store.
func TestLayerWrongBlobDigest(t *testing.T) {
	e := newEnv(t)
	tb := layerTar(t, file("etc/passwd", "root:x:0:0::/:/bin/sh\n"))
	blob := gz(t, tb)
	wrong := sha([]byte("something else"))
	in := e.s.NewIngest()
	_, err := in.Layer(context.Background(), LayerSpec{Blob: v1.Descriptor{Digest: wrong}, DiffID: sha(tb)},
		func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil })
	in.Close()
	if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "does not match its digest") {
		t.Fatalf("Layer with a wrong blob digest = %v", err)
	}
	for _, sub := range []string{"layers", "content/blobs/sha256", "tmp"} {
		if got := e.names(sub); len(got) != 0 {
			t.Fatalf("%s after a wrong digest = %v", sub, got)
		}
	}
}

// BenchmarkTarGuard reads a 64 MiB tar (64 files) through a tar reader,
// with and without the guard in front, as the unpacker does.
func BenchmarkTarGuard(b *testing.B) {
	var entries []entry
	body := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	for i := range 64 {
		entries = append(entries, file(fmt.Sprintf("f%d", i), body))
	}
	tb := layerTar(b, entries...)
	read := func(r io.Reader) {
		tr := tar.NewReader(r)
		buf := make([]byte, 32<<10)
		for {
			if _, err := tr.Next(); err != nil {
				return
			}
			if _, err := io.CopyBuffer(io.Discard, tr, buf); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("plain", func(b *testing.B) {
		b.SetBytes(int64(len(tb)))
		for b.Loop() {
			read(bytes.NewReader(tb))
		}
	})
	b.Run("guarded", func(b *testing.B) {
		b.SetBytes(int64(len(tb)))
		for b.Loop() {
			g := newTarGuard(1<<40, DefaultMaxLayerEntries, "bench")
			read(io.TeeReader(bytes.NewReader(tb), g))
			if err := g.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestLayerNegativeSize: Go's tar reader accepts a negative size (from a
// PAX record) on an entry without data; counted, it would cancel every
// later entry's size and let a sparse bomb through. It is refused as
// malformed before anything is unpacked.
func TestLayerNegativeSize(t *testing.T) {
	const limit = 1 << 20
	raw := negativeSizeTar(t, testimage.SparseTar("big", 64<<20, []byte("end")))
	e := newEnv(t)
	e.s.SetMaxLayerUnpackedBytes(limit)
	blob := gz(t, raw)
	in := e.s.NewIngest()
	_, err := in.Layer(context.Background(), LayerSpec{Blob: v1.Descriptor{Digest: sha(blob), Size: int64(len(blob))}, DiffID: sha(raw)},
		func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil })
	in.Close()
	if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "negative size") {
		t.Fatalf("Layer = %v, want InvalidArgument naming the negative size", err)
	}
	for _, sub := range []string{"layers", "content/blobs/sha256", "tmp"} {
		if got := e.names(sub); len(got) != 0 {
			t.Fatalf("%s after a refused layer = %v", sub, got)
		}
	}
}

// negativeSizeTar is a symlink whose PAX header says size=-9e18, then rest.
// Written by hand: archive/tar's writer refuses negative sizes.
func negativeSizeTar(t *testing.T, rest []byte) []byte {
	t.Helper()
	header := func(name string, typ byte, size int, link string) []byte {
		h := make([]byte, 512)
		copy(h[0:], name)
		copy(h[100:], "0000644\x00")
		copy(h[108:], "0000000\x00")
		copy(h[116:], "0000000\x00")
		copy(h[124:], fmt.Sprintf("%011o\x00", size))
		copy(h[136:], fmt.Sprintf("%011o\x00", 1700000000))
		h[156] = typ
		copy(h[157:], link)
		copy(h[257:], "ustar\x0000")
		copy(h[148:], "        ")
		sum := 0
		for _, c := range h {
			sum += int(c)
		}
		copy(h[148:], fmt.Sprintf("%06o\x00 ", sum))
		return h
	}
	rec := "size=-9000000000000000000\n"
	n := len(rec) + 3
	for len(fmt.Sprintf("%d %s", n, rec)) != n {
		n = len(fmt.Sprintf("%d %s", n, rec))
	}
	pax := fmt.Sprintf("%d %s", n, rec)
	var out bytes.Buffer
	out.Write(header("PaxHeaders.0/l", 'x', len(pax), ""))
	out.WriteString(pax)
	out.Write(make([]byte, (512-out.Len()%512)%512))
	out.Write(header("l", '2', 0, "target"))
	out.Write(rest)
	return out.Bytes()
}
