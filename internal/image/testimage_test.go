package image

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/store"
	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/go-archive"
	gcompression "github.com/moby/go-archive/compression"
)

// entry is one tar entry of a test layer.
type entry struct {
	name string
	typ  byte // tar.TypeReg when 0
	body string
	link string
	mode int64
}

func file(name, body string) entry { return entry{name: name, body: body} }
func dir(name string) entry        { return entry{name: name, typ: tar.TypeDir} }

func layerTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, ModTime: time.Unix(1700000000, 0)}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gzLayer makes a gzip layer; zstdLayer a zstd one; rawLayer an
// uncompressed one (its blob digest is its diff ID).
func gzLayer(t *testing.T, tarBytes []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tarBytes)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func zstdLayer(t *testing.T, tarBytes []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tarBytes)), nil },
		tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func rawLayer(tarBytes []byte) v1.Layer { return static.NewLayer(tarBytes, types.OCIUncompressedLayer) }

// makeImage stacks layers (lowest first) into an OCI image with a config
// carrying cmd, so that different cmds make different image ids.
func makeImage(t *testing.T, cmd string, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layers...)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Cmd = []string{"/bin/sh", "-c", cmd}
	cf.Config.Env = []string{"PATH=/usr/bin:/bin", "CMD=" + cmd}
	cf.Config.WorkingDir = "/work"
	cf.Config.User = "1000:1000"
	cf.Config.StopSignal = "SIGQUIT"
	cf.Config.Labels = map[string]string{"cmd": cmd}
	cf.Config.Volumes = map[string]struct{}{"/data": {}}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// writeDockerSave writes a `docker save`-style archive of img under tags.
func writeDockerSave(t *testing.T, path string, img v1.Image, tags ...string) {
	t.Helper()
	refs := map[name.Reference]v1.Image{}
	for _, tag := range tags {
		tg, err := name.NewTag(tag)
		if err != nil {
			t.Fatal(err)
		}
		refs[tg] = img
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := tarball.MultiRefWrite(refs, f); err != nil {
		t.Fatal(err)
	}
}

// writeOCILayout writes an OCI image layout dir with img annotated by ann.
func writeOCILayout(t *testing.T, dir string, img v1.Image, ann map[string]string) layout.Path {
	t.Helper()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(ann)); err != nil {
		t.Fatal(err)
	}
	return lp
}

// tarDir writes dir as a tar archive at path.
func tarDir(t *testing.T, dir, path string) {
	t.Helper()
	rc, err := archive.Tar(dir, gcompression.None)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, rc); err != nil {
		t.Fatal(err)
	}
}

// testEnv is an image service on a fresh root and record store.
type testEnv struct {
	t    testing.TB
	dir  string // test temp dir; root and store live inside it
	root string
	dbp  string
	st   *store.Store
	s    *Service
}

func newEnv(t testing.TB) *testEnv {
	t.Helper()
	d := t.TempDir()
	e := &testEnv{t: t, dir: d, root: filepath.Join(d, "images"), dbp: filepath.Join(d, "berth.db")}
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *testEnv) open() {
	e.t.Helper()
	st, err := store.Open(e.dbp)
	if err != nil {
		e.t.Fatal(err)
	}
	s, err := New(e.root, st)
	if err != nil {
		st.Close()
		e.t.Fatal(err)
	}
	e.st, e.s = st, s
}

func (e *testEnv) close() {
	if e.s != nil {
		e.s.Close()
		e.s = nil
	}
	if e.st != nil {
		e.st.Close()
		e.st = nil
	}
}

// names lists the entries of a dir under the root (e.g. "layers").
func (e *testEnv) names(sub string) []string {
	e.t.Helper()
	ents, err := os.ReadDir(filepath.Join(e.root, sub))
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, x := range ents {
		out = append(out, x.Name())
	}
	return out
}

func runtimeArch() string { return runtime.GOARCH }
