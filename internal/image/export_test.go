package image

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/berth-project/berth/internal/errdefs"
)

// exported writes what Export produces for refs to a file and returns its
// path.
func exported(t *testing.T, e *testEnv, format ExportFormat, refs ...string) string {
	t.Helper()
	var buf bytes.Buffer
	if err := e.s.Export(context.Background(), refs, format, &buf); err != nil {
		t.Fatalf("Export(%v, %s): %v", refs, format, err)
	}
	p := filepath.Join(t.TempDir(), string(format)+".tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestExportRoundTrip saves an image in both formats and imports each
// archive into a fresh store: same image id, layers, tags and (OCI) the
// same manifest digest, and nothing left in the store's tmp dir.
func TestExportRoundTrip(t *testing.T) {
	src := newEnv(t)
	img := makeImage(t, "roundtrip",
		gzLayer(t, layerTar(t, dir("bin/"), file("bin/tool", "tool"))),
		rawLayer(layerTar(t, dir("etc/"), file("etc/conf", "c"))))
	lay := filepath.Join(src.dir, "layout")
	writeOCILayout(t, lay, img, map[string]string{annotationContainerdName: "example.com/app:1"})
	arch := filepath.Join(src.dir, "in.tar")
	tarDir(t, lay, arch)
	orig := importOne(t, src, arch)
	in := src.s.NewIngest()
	_, err := in.Commit(context.Background(), CommitSpec{Manifest: mustParseHash(t, orig.Manifest), Names: []string{"example.com/app:2"}})
	in.Close()
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		format   ExportFormat
		ref      string
		wantTags []string
	}{
		{ExportDocker, "example.com/app:1", []string{"example.com/app:1"}},
		{ExportOCI, "example.com/app:1", []string{"example.com/app:1"}},
		{ExportDocker, orig.ID, []string{"example.com/app:1", "example.com/app:2"}},
		{ExportOCI, orig.ID[:19], []string{"example.com/app:1", "example.com/app:2"}},
	} {
		t.Run(string(tc.format)+" "+tc.ref, func(t *testing.T) {
			p := exported(t, src, tc.format, tc.ref)
			dst := newEnv(t)
			// A docker archive lists the image once with its tags, an
			// OCI layout once per tag.
			want := 1
			if tc.format == ExportOCI {
				want = len(tc.wantTags)
			}
			imgs, err := dst.s.Import(context.Background(), p)
			if err != nil || len(imgs) != want {
				t.Fatalf("Import: %d images, %v", len(imgs), err)
			}
			got, err := dst.s.Get(imgs[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != orig.ID || !slices.Equal(got.ChainIDs, orig.ChainIDs) {
				t.Fatalf("re-imported id %s chain %v, want %s %v", got.ID, got.ChainIDs, orig.ID, orig.ChainIDs)
			}
			tags := slices.Clone(got.RepoTags)
			slices.Sort(tags)
			if !slices.Equal(tags, tc.wantTags) {
				t.Errorf("tags = %v, want %v", tags, tc.wantTags)
			}
			if tc.format == ExportOCI && got.Manifest != orig.Manifest {
				t.Errorf("OCI round trip changed the manifest: %s, want %s", got.Manifest, orig.Manifest)
			}
			if b, err := os.ReadFile(filepath.Join(dst.s.LayerDirs(got)[1], "etc/conf")); err != nil || string(b) != "c" {
				t.Errorf("layer content: %q %v", b, err)
			}
			if left := src.names("tmp"); len(left) != 0 {
				t.Errorf("export left %v in tmp", left)
			}
		})
	}
}

// TestExportUntagged saves an image that has no tag: the archive names
// none, and imports as the same id.
func TestExportUntagged(t *testing.T) {
	e := newEnv(t)
	img := makeImage(t, "untagged", gzLayer(t, layerTar(t, file("f", "x"))))
	lay := filepath.Join(e.dir, "layout")
	writeOCILayout(t, lay, img, nil)
	arch := filepath.Join(e.dir, "in.tar")
	tarDir(t, lay, arch)
	orig := importOne(t, e, arch)
	for _, f := range []ExportFormat{ExportDocker, ExportOCI} {
		got := importOne(t, newEnv(t), exported(t, e, f, orig.ID))
		if got.ID != orig.ID || len(got.RepoTags) != 0 {
			t.Errorf("%s: re-imported %s with tags %v", f, got.ID, got.RepoTags)
		}
	}
}

// TestExportErrors: an unknown image or format fails before any output,
// and an ended context stops the export.
func TestExportErrors(t *testing.T) {
	e := newEnv(t)
	img := makeImage(t, "err", gzLayer(t, layerTar(t, file("f", "x"))))
	p := filepath.Join(e.dir, "in.tar")
	writeDockerSave(t, p, img, "example.com/err:1")
	importOne(t, e, p)

	var buf bytes.Buffer
	err := e.s.Export(context.Background(), []string{"example.com/err:1", "example.com/nope:1"}, ExportDocker, &buf)
	if !errors.Is(err, errdefs.ErrNotFound) || buf.Len() != 0 {
		t.Errorf("unknown image: err %v, %d bytes written", err, buf.Len())
	}
	if err := e.s.Export(context.Background(), []string{"example.com/err:1"}, "zip", &buf); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad format: %v", err)
	}
	if err := e.s.Export(context.Background(), nil, ExportDocker, &buf); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("no image: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, f := range []ExportFormat{ExportDocker, ExportOCI} {
		if err := e.s.Export(ctx, []string{"example.com/err:1"}, f, &buf); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with an ended context: %v", f, err)
		}
	}
	if left := e.names("tmp"); len(left) != 0 {
		t.Errorf("export left %v in tmp", left)
	}
	// The export's leases are gone: removing the image frees everything.
	if err := e.s.Remove(context.Background(), "example.com/err:1", nil); err != nil {
		t.Fatal(err)
	}
	if len(e.names("content/blobs/sha256")) != 0 {
		t.Errorf("blobs left after remove: %v", e.names("content/blobs/sha256"))
	}
}

// TestExportReadBySkopeo checks the archives as another tool reads them.
func TestExportReadBySkopeo(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("skopeo not installed")
	}
	e := newEnv(t)
	img := makeImage(t, "skopeo", gzLayer(t, layerTar(t, file("f", "x"))))
	p := filepath.Join(e.dir, "in.tar")
	writeDockerSave(t, p, img, "example.com/sk:1")
	orig := importOne(t, e, p)
	for _, tc := range []struct {
		f         ExportFormat
		transport string
	}{{ExportDocker, "docker-archive:"}, {ExportOCI, "oci-archive:"}} {
		out, err := exec.Command(skopeo, "inspect", "--config", "--raw", tc.transport+exported(t, e, tc.f, "example.com/sk:1")).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo inspect %s: %v\n%s", tc.f, err, out)
		}
		if !bytes.Contains(out, []byte(`"skopeo"`)) {
			t.Errorf("%s: skopeo read config %s, want the image's (%s)", tc.f, out, orig.ID)
		}
	}
}
