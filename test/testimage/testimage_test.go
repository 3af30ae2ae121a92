package testimage

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

// flatten reads the merged filesystem of img's layers into name -> header.
func flatten(t *testing.T, rc io.ReadCloser) map[string]*tar.Header {
	t.Helper()
	defer rc.Close()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = h
	}
}

func TestBusybox(t *testing.T) {
	p := Busybox(t)
	if p2 := Busybox(t); p2 != p {
		t.Fatalf("Busybox not cached: %s then %s", p, p2)
	}
	tag, _ := name.NewTag(BusyboxRef)
	img, err := tarball.ImageFromPath(p, &tag)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if len(cf.Config.Cmd) != 1 || cf.Config.Cmd[0] != "sh" || len(cf.Config.Env) != 1 || cf.Config.Env[0] != DefaultPath {
		t.Errorf("config: cmd %q env %q", cf.Config.Cmd, cf.Config.Env)
	}
	files := flatten(t, mutate.Extract(img))
	for _, want := range []string{"bin/busybox", "bin/sh", "bin/cat", "etc/passwd", "etc/group", "tmp", "root", "home/user"} {
		if files[want] == nil {
			t.Errorf("missing %s", want)
		}
	}
	if h := files["tmp"]; h != nil && h.Mode&0o7777 != 0o1777 {
		t.Errorf("/tmp mode %o", h.Mode)
	}
	if h := files["bin/sh"]; h != nil && (h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox") {
		t.Errorf("/bin/sh: %+v", h)
	}
	// Same input, same digest: the image id must be stable across runs.
	img2, _ := buildBusybox()
	d1, _ := img.ConfigName()
	d2, _ := img2.ConfigName()
	if d1 != d2 {
		t.Errorf("config digest not stable: %s vs %s", d1, d2)
	}
}

func TestBuildWhiteoutsAndOCILayout(t *testing.T) {
	img, err := Build(Options{
		Layers: []Layer{
			{Files: map[string]string{"/data/a": "a", "/data/b": "b", "/opt/x/y": "y"}},
			{Whiteouts: []string{"/data/a"}, Opaque: []string{"/opt/x"}, Files: map[string]string{"/opt/x/z": "z"}},
		},
		Entrypoint: []string{"/bin/echo"}, Cmd: []string{"hi"}, WorkingDir: "/data", User: "1000", StopSignal: "SIGUSR1", Env: []string{"A=1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	files := flatten(t, mutate.Extract(img))
	if files["data/a"] != nil || files["data/b"] == nil || files["opt/x/y"] != nil || files["opt/x/z"] == nil {
		t.Errorf("whiteouts not applied: a=%v b=%v y=%v z=%v", files["data/a"] != nil, files["data/b"] != nil, files["opt/x/y"] != nil, files["opt/x/z"] != nil)
	}
	cf, _ := img.ConfigFile()
	if cf.Config.WorkingDir != "/data" || cf.Config.User != "1000" || cf.Config.StopSignal != "SIGUSR1" || len(cf.Config.Env) != 2 {
		t.Errorf("config %+v", cf.Config)
	}
	p := filepath.Join(t.TempDir(), "oci.tar")
	if err := WriteOCILayout(p, "berth.test/x:1", img); err != nil {
		t.Fatal(err)
	}
	// Unpack and read the layout back.
	dir := t.TempDir()
	f, _ := os.Open(p)
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, h.Name)
		if h.Typeflag == tar.TypeDir {
			os.MkdirAll(dst, 0o755)
			continue
		}
		os.MkdirAll(filepath.Dir(dst), 0o755)
		data, _ := io.ReadAll(tr)
		os.WriteFile(dst, data, 0o644)
	}
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "berth.test/x:1" {
		t.Errorf("index %+v", im.Manifests)
	}
	want, _ := img.Digest()
	if im.Manifests[0].Digest != want {
		t.Errorf("digest %s, want %s", im.Manifests[0].Digest, want)
	}
}
