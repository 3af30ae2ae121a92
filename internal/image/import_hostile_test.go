package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/test/testimage"
)

// tarEntry is one entry of an archive read back by readTar.
type tarEntry struct {
	hdr  *tar.Header
	body []byte
}

func readTar(t *testing.T, path string) []tarEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []tarEntry
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{hdr, body})
	}
}

func writeTar(t *testing.T, path string, entries []tarEntry) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := *e.hdr
		h.Size = int64(len(e.body))
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			if _, err := tw.Write(e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// hostileSave writes a docker save archive of a one-layer image with edit
// applied to its entries, and returns its path and the layer file's name.
func hostileSave(t *testing.T, e *testEnv, edit func(entries []tarEntry, layer string) []tarEntry) (string, string) {
	t.Helper()
	img := makeImage(t, "hostile", gzLayer(t, layerTar(t, file("etc/motd", "hi\n"))))
	good := filepath.Join(e.dir, "good.tar")
	writeDockerSave(t, good, img, "hostile:v1")
	entries := readTar(t, good)
	var layer string
	for _, x := range entries {
		if strings.HasSuffix(x.hdr.Name, ".tar.gz") || strings.HasSuffix(x.hdr.Name, "layer.tar") {
			layer = x.hdr.Name
		}
	}
	if layer == "" {
		t.Fatalf("no layer file in the docker save archive: %v", entries)
	}
	p := filepath.Join(e.dir, "hostile.tar")
	writeTar(t, p, edit(entries, layer))
	return p, layer
}

// replace swaps the entry called name for hdr (no body).
func replace(entries []tarEntry, name string, hdr *tar.Header) []tarEntry {
	out := make([]tarEntry, 0, len(entries))
	for _, x := range entries {
		if x.hdr.Name == name {
			h := *hdr
			h.Name = name
			x = tarEntry{hdr: &h}
		}
		out = append(out, x)
	}
	return out
}

// importWithin runs Import and fails the test if it does not return in time
// (a FIFO in the archive used to block it for ever).
func importWithin(t *testing.T, e *testEnv, path string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := e.s.Import(context.Background(), path)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("Import(%s) blocked", path)
		return nil
	}
}

func TestImportHostileArchives(t *testing.T) {
	requireRoot(t) // device nodes in the test archives
	fifo := &tar.Header{Typeflag: tar.TypeFifo, Mode: 0o644}
	zero := &tar.Header{Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 5} // /dev/zero
	for _, c := range []struct {
		name  string
		edit  func(entries []tarEntry, layer string) []tarEntry
		names string // what the error must name
	}{
		{"manifest.json is a FIFO", func(es []tarEntry, _ string) []tarEntry { return replace(es, "manifest.json", fifo) }, "manifest.json"},
		{"manifest.json is /dev/zero", func(es []tarEntry, _ string) []tarEntry { return replace(es, "manifest.json", zero) }, "manifest.json"},
		{"layer is a FIFO", func(es []tarEntry, l string) []tarEntry { return replace(es, l, fifo) }, "LAYER"},
		{"layer is /dev/zero", func(es []tarEntry, l string) []tarEntry { return replace(es, l, zero) }, "LAYER"},
		{"layer is a directory", func(es []tarEntry, l string) []tarEntry {
			return replace(es, l, &tar.Header{Typeflag: tar.TypeDir, Mode: 0o755})
		}, "LAYER"},
		{"manifest.json is a symlink", func(es []tarEntry, _ string) []tarEntry {
			for _, x := range es {
				if x.hdr.Name == "manifest.json" {
					es = append(es, tarEntry{hdr: &tar.Header{Name: "real.json", Typeflag: tar.TypeReg, Mode: 0o644}, body: x.body})
				}
			}
			return replace(es, "manifest.json", &tar.Header{Typeflag: tar.TypeSymlink, Linkname: "real.json"})
		}, "manifest.json"},
		{"manifest.json over 8 MiB", func(es []tarEntry, _ string) []tarEntry {
			for i, x := range es {
				if x.hdr.Name == "manifest.json" {
					es[i].body = append(append([]byte{}, x.body...), bytes.Repeat([]byte(" "), 8<<20)...)
				}
			}
			return es
		}, "manifest.json"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.s.SetMaxLayerUnpackedBytes(32 << 20)
			p, layer := hostileSave(t, e, c.edit)
			err := importWithin(t, e, p)
			if !errdefs.IsInvalid(err) {
				t.Fatalf("Import = %v, want InvalidArgument", err)
			}
			t.Log(err)
			want := strings.ReplaceAll(c.names, "LAYER", layer)
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q should name %s", err, want)
			}
			if got := e.names("tmp"); len(got) != 0 {
				t.Fatalf("tmp = %v", got)
			}
			if got := e.s.List(); len(got) != 0 {
				t.Fatalf("images recorded: %v", got)
			}
		})
	}
}

// TestImportOCILayoutHostile: an OCI layout's index.json must be a regular
// file, not a link or a FIFO, and so must its blobs.
func TestImportOCILayoutHostile(t *testing.T) {
	requireRoot(t)
	img := makeImage(t, "oci", gzLayer(t, layerTar(t, file("etc/motd", "hi\n"))))
	for _, c := range []struct {
		name  string
		edit  func(es []tarEntry) []tarEntry
		names string
	}{
		{"index.json is a FIFO", func(es []tarEntry) []tarEntry {
			return replace(es, "index.json", &tar.Header{Typeflag: tar.TypeFifo, Mode: 0o644})
		}, "index.json"},
		{"index.json is a symlink", func(es []tarEntry) []tarEntry {
			for _, x := range es {
				if x.hdr.Name == "index.json" {
					es = append(es, tarEntry{hdr: &tar.Header{Name: "real.json", Typeflag: tar.TypeReg, Mode: 0o644}, body: x.body})
				}
			}
			return replace(es, "index.json", &tar.Header{Typeflag: tar.TypeSymlink, Linkname: "real.json"})
		}, "index.json"},
		{"a blob is a FIFO", func(es []tarEntry) []tarEntry {
			var biggest string
			var size int
			for _, x := range es {
				if strings.HasPrefix(x.hdr.Name, "blobs/sha256/") && len(x.body) > size {
					biggest, size = x.hdr.Name, len(x.body) // the layer
				}
			}
			return replace(es, biggest, &tar.Header{Typeflag: tar.TypeFifo, Mode: 0o644})
		}, "blobs/sha256/"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			lpDir := filepath.Join(e.dir, "oci")
			writeOCILayout(t, lpDir, img, map[string]string{annotationRefName: "example.com/oci:v1"})
			good := filepath.Join(e.dir, "good.tar")
			tarDir(t, lpDir, good)
			entries := readTar(t, good)
			for _, x := range entries {
				x.hdr.Name = strings.TrimPrefix(x.hdr.Name, "./")
			}
			p := filepath.Join(e.dir, "hostile.tar")
			writeTar(t, p, c.edit(entries))
			err := importWithin(t, e, p)
			t.Log(err)
			if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), c.names) {
				t.Fatalf("Import = %v, want InvalidArgument naming %s", err, c.names)
			}
			if got := e.names("tmp"); len(got) != 0 {
				t.Fatalf("tmp = %v", got)
			}
		})
	}
}

// TestImportArchiveBomb: the outer archive is held to the layer limit too,
// counting a sparse entry at its full size.
func TestImportArchiveBomb(t *testing.T) {
	e := newEnv(t)
	e.s.SetMaxLayerUnpackedBytes(1 << 20)
	p := filepath.Join(e.dir, "bomb.tar")
	if err := os.WriteFile(p, testimage.SparseTar("big", 64<<20, []byte("end")), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := e.s.Import(context.Background(), p)
	if !errors.Is(err, errdefs.ErrResourceExhausted) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), `"big"`) {
		t.Fatalf("Import = %v, want ResourceExhausted naming the archive and the entry", err)
	}
	if got := e.names("tmp"); len(got) != 0 {
		t.Fatalf("tmp = %v", got)
	}

}

// TestExtractArchiveSkipsDevices: device nodes and FIFOs in an image
// archive are never created; files, dirs and links are.
func TestExtractArchiveSkipsDevices(t *testing.T) {
	requireRoot(t)
	e := newEnv(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "d/a", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1},
		{Name: "sda", Typeflag: tar.TypeBlock, Mode: 0o666, Devmajor: 8},
		{Name: "zero", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 5},
		{Name: "pipe", Typeflag: tar.TypeFifo, Mode: 0o666},
		{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "d/a"},
		{Name: "h", Typeflag: tar.TypeLink, Linkname: "d/a"},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("x"))
		}
	}
	tw.Close()
	dst := t.TempDir()
	if err := e.s.extractArchive(context.Background(), &buf, dst, "image archive test"); err != nil {
		t.Fatal(err)
	}
	var got []string
	filepath.WalkDir(dst, func(p string, d os.DirEntry, err error) error {
		if p != dst {
			rel, _ := filepath.Rel(dst, p)
			got = append(got, rel)
		}
		return err
	})
	if want := []string{"d", "d/a", "h", "l"}; !slices.Equal(got, want) {
		t.Fatalf("extracted %v, want %v", got, want)
	}
}
