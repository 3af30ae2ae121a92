package image

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/test/testimage"
)

func digestOf(s string) v1.Hash {
	h, _, _ := v1.SHA256(strings.NewReader(s))
	return h
}

func artifactManifest(titles ...string) *v1.Manifest {
	m := &v1.Manifest{
		SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: "application/x.test",
		Config: v1.Descriptor{MediaType: types.OCIEmptyJSON, Digest: digestOf("{}"), Size: 2},
	}
	for _, t := range titles {
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: "text/plain", Digest: digestOf(t), Size: int64(len(t)),
			Annotations: map[string]string{AnnotationTitle: t}})
	}
	return m
}

func TestIsArtifact(t *testing.T) {
	empty := artifactManifest("a")
	imageCfg := artifactManifest("a")
	imageCfg.Config.MediaType = types.OCIConfigJSON
	typed := artifactManifest("a")
	typed.Config.MediaType = types.OCIConfigJSON
	plain := artifactManifest("a")
	plain.Config.MediaType, plain.ArtifactType = types.OCIConfigJSON, ""
	docker := artifactManifest("a")
	docker.MediaType, docker.Config.MediaType = types.DockerManifestSchema2, types.DockerConfigJSON
	helm := artifactManifest("a")
	helm.Config.MediaType, helm.ArtifactType = "application/vnd.cncf.helm.config.v1+json", ""
	for name, c := range map[string]struct {
		m    *v1.Manifest
		mt   types.MediaType
		want bool
	}{
		"empty config":                   {empty, types.OCIManifestSchema1, true},
		"image config with artifactType": {typed, types.OCIManifestSchema1, true},
		"runnable OCI image":             {plain, types.OCIManifestSchema1, false},
		"runnable Docker image":          {docker, types.DockerManifestSchema2, false},
		"custom config (helm)":           {helm, types.OCIManifestSchema1, true},
	} {
		if got := IsArtifact(c.mt, c.m); got != c.want {
			t.Errorf("%s: IsArtifact = %v, want %v", name, got, c.want)
		}
	}
}

func TestParseArtifact(t *testing.T) {
	a, err := ParseArtifact(artifactManifest("a.txt", "conf/b.yaml", "conf/deep/c"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(a.Paths(), ","); got != "a.txt,conf/b.yaml,conf/deep/c" || a.Type != "application/x.test" {
		t.Errorf("parsed %+v", a)
	}
	model := artifactManifest("w")
	model.ArtifactType = ""
	model.Layers[0].Annotations = map[string]string{AnnotationModelFilepath: "weights/w.bin"}
	if a, err := ParseArtifact(model, 1<<20); err != nil || a.Files[0].Path != "weights/w.bin" || a.Type != string(types.OCIEmptyJSON) {
		t.Errorf("model-spec file path: %+v, %v", a, err)
	}

	for name, c := range map[string]struct {
		m    *v1.Manifest
		max  int64
		kind error
		msg  string
	}{
		"no layers":         {artifactManifest(), 1 << 20, errdefs.ErrInvalidArgument, "no layers"},
		"dot dot":           {artifactManifest("../evil"), 1 << 20, errdefs.ErrInvalidArgument, `"../evil"`},
		"inner dot dot":     {artifactManifest("a/../../b"), 1 << 20, errdefs.ErrInvalidArgument, "not a clean path"},
		"absolute":          {artifactManifest("/etc/passwd"), 1 << 20, errdefs.ErrInvalidArgument, "absolute"},
		"dot":               {artifactManifest("."), 1 << 20, errdefs.ErrInvalidArgument, "not a clean path"},
		"unclean":           {artifactManifest("./a"), 1 << 20, errdefs.ErrInvalidArgument, "not a clean path"},
		"trailing slash":    {artifactManifest("a/"), 1 << 20, errdefs.ErrInvalidArgument, "not a clean path"},
		"double slash":      {artifactManifest("a//b"), 1 << 20, errdefs.ErrInvalidArgument, "not a clean path"},
		"nul":               {artifactManifest("a\x00b"), 1 << 20, errdefs.ErrInvalidArgument, "UTF-8"},
		"long name":         {artifactManifest(strings.Repeat("n", 256)), 1 << 20, errdefs.ErrInvalidArgument, "255"},
		"duplicate":         {artifactManifest("a", "a"), 1 << 20, errdefs.ErrInvalidArgument, "another layer"},
		"file and dir":      {artifactManifest("a", "a/b"), 1 << 20, errdefs.ErrInvalidArgument, "directory"},
		"too large":         {artifactManifest("aaaa", "bbbb"), 6, errdefs.ErrResourceExhausted, "max_layer_unpacked_bytes"},
		"no title":          {func() *v1.Manifest { m := artifactManifest("a"); m.Layers[0].Annotations = nil; return m }(), 1 << 20, errdefs.ErrInvalidArgument, AnnotationTitle},
		"negative size":     {func() *v1.Manifest { m := artifactManifest("a"); m.Layers[0].Size = -1; return m }(), 1 << 20, errdefs.ErrInvalidArgument, "negative"},
		"bad layer digest":  {func() *v1.Manifest { m := artifactManifest("a"); m.Layers[0].Digest.Hex = "zz"; return m }(), 1 << 20, errdefs.ErrInvalidArgument, "digest"},
		"bad config digest": {func() *v1.Manifest { m := artifactManifest("a"); m.Config.Digest.Algorithm = "md5"; return m }(), 1 << 20, errdefs.ErrInvalidArgument, "digest"},
		"too many files": {func() *v1.Manifest {
			m := artifactManifest()
			for i := 0; i <= MaxArtifactFiles; i++ {
				m.Layers = append(m.Layers, v1.Descriptor{Digest: digestOf("x")})
			}
			return m
		}(), 1 << 20, errdefs.ErrResourceExhausted, "layers"},
	} {
		_, err := ParseArtifact(c.m, c.max)
		if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: error %v, want %v mentioning %q", name, err, c.kind, c.msg)
		}
	}
}

// FuzzParseArtifact: any manifest either is refused as InvalidArgument or
// ResourceExhausted, or gives files whose paths are clean, local, distinct,
// never a file and a directory at once, and within the limits.
func FuzzParseArtifact(f *testing.F) {
	for _, m := range []*v1.Manifest{
		artifactManifest("a.txt", "conf/b"), artifactManifest("../x"), artifactManifest("a", "a/b"), artifactManifest(),
	} {
		raw, _ := json.Marshal(m)
		f.Add(raw)
	}
	f.Add([]byte(`{"layers":[{"digest":"sha256:` + strings.Repeat("a", 64) + `","size":1,"annotations":{"org.opencontainers.image.title":"x/./y"}}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := v1.ParseManifest(strings.NewReader(string(raw)))
		if err != nil {
			return
		}
		const max = 1 << 20
		a, err := ParseArtifact(m, max)
		if err != nil {
			if !errdefs.IsInvalid(err) && !errors.Is(err, errdefs.ErrResourceExhausted) {
				t.Fatalf("error %v is neither InvalidArgument nor ResourceExhausted", err)
			}
			return
		}
		if len(a.Files) == 0 || len(a.Files) > MaxArtifactFiles {
			t.Fatalf("%d files", len(a.Files))
		}
		seen := map[string]bool{}
		var total int64
		for _, f := range a.Files {
			p := f.Path
			if p == "." || !filepath.IsLocal(p) || filepath.Clean(p) != p || strings.Contains("/"+p+"/", "/../") || seen[p] {
				t.Fatalf("path %q accepted", p)
			}
			if joined := filepath.Join("/root", p); !strings.HasPrefix(joined, "/root/") {
				t.Fatalf("path %q leads out: %s", p, joined)
			}
			seen[p] = true
			total += f.Size
		}
		for p := range seen {
			for d := filepath.Dir(p); d != "."; d = filepath.Dir(d) {
				if seen[d] {
					t.Fatalf("%q is a file and the directory of %q", d, p)
				}
			}
		}
		if total > max {
			t.Fatalf("%d bytes accepted, limit %d", total, max)
		}
	})
}

type artifactRegistry struct {
	host string
}

func newArtifactRegistry(t *testing.T) *artifactRegistry {
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return &artifactRegistry{host: strings.TrimPrefix(srv.URL, "http://")}
}

func (r *artifactRegistry) push(t *testing.T, repoTag string, a testimage.Artifact) (string, testimage.RawManifest) {
	t.Helper()
	ref := r.host + "/" + repoTag
	parsed, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	m, err := a.Push(parsed)
	if err != nil {
		t.Fatal(err)
	}
	return ref, m
}

// TestPullArtifact pulls an artifact: its files are its layer blobs under
// their titles, read-only, in its one layer dir; it is recorded under its
// manifest digest and removed with its files. Unmountable artifacts and
// indexes of artifacts are refused and leave nothing.
func TestPullArtifact(t *testing.T) {
	reg := newArtifactRegistry(t)
	e := newEnv(t)
	p := NewPuller(e.s, PullConfig{})
	ctx := context.Background()
	ref, m := reg.push(t, "test/art:1", testimage.Artifact{Type: "application/x.test", Files: []testimage.ArtifactFile{
		{Title: "a.txt", Content: "file a\n"}, {Title: "conf/b.yaml", Content: "b: 1\n"}, {Title: "empty", Content: ""},
		{Title: "conf/copy-of-a", Content: "file a\n"}, // one blob, two files
	}})
	img, err := p.Pull(ctx, ref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img.ID != m.Digest().String() || img.Artifact == nil || len(img.Artifact.Files) != 4 || img.Size != int64(len("file a\nb: 1\nfile a\n")) {
		t.Fatalf("pulled %+v (artifact %+v), want id %s", img, img.Artifact, m.Digest())
	}
	dirs := e.s.LayerDirs(img)
	if len(dirs) != 1 {
		t.Fatalf("layer dirs %v", dirs)
	}
	for p, want := range map[string]string{"a.txt": "file a\n", "conf/b.yaml": "b: 1\n", "empty": "", "conf/copy-of-a": "file a\n"} {
		b, err := os.ReadFile(filepath.Join(dirs[0], p))
		if err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", p, b, err, want)
		}
		if fi, err := os.Stat(filepath.Join(dirs[0], p)); err == nil && fi.Mode().Perm() != 0o444 {
			t.Errorf("%s has mode %v, want 0444", p, fi.Mode())
		}
	}
	if got, err := e.s.Get(ref); err != nil || got.ID != img.ID {
		t.Errorf("Get(%s) = %v, %v", ref, got, err)
	}
	// The record survives a restart with its files.
	e.close()
	e.open()
	p = NewPuller(e.s, PullConfig{})
	if got, err := e.s.Get(img.ID); err != nil || got.Artifact == nil || strings.Join(got.Artifact.Paths(), ",") != "a.txt,conf/b.yaml,empty,conf/copy-of-a" ||
		e.s.LayerDirs(got)[0] != dirs[0] {
		t.Fatalf("after a restart: %+v, %v", got, err)
	}
	// Again: nothing new, same record.
	if again, err := p.Pull(ctx, ref, PullOptions{}); err != nil || again.ID != img.ID {
		t.Errorf("second pull: %v, %v", again, err)
	}

	// Held (mounted): not removable; then removed with its files.
	if _, err := e.s.HoldImage(ref, "ctr1"); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Remove(ctx, ref, nil); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Remove of a held artifact: %v", err)
	}
	e.s.Unhold("ctr1")
	if err := e.s.Remove(ctx, ref, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dirs[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("files dir after remove: %v", err)
	}
	assertEmptyStore(t, e)

	for name, c := range map[string]struct {
		files []testimage.ArtifactFile
		msg   string
	}{
		"dot dot title": {[]testimage.ArtifactFile{{Title: "ok", Content: "x"}, {Title: "../evil", Content: "y"}}, `"../evil"`},
		"no title":      {[]testimage.ArtifactFile{{Content: "x"}}, AnnotationTitle},
	} {
		ref, _ := reg.push(t, "test/bad:"+strings.ReplaceAll(name, " ", "-"), testimage.Artifact{Type: "application/x.test", Files: c.files})
		_, err := p.Pull(ctx, ref, PullOptions{})
		if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), ref) {
			t.Errorf("%s: pull error %v, want InvalidArgument naming %s and %s", name, err, ref, c.msg)
		}
	}
	assertEmptyStore(t, e)

	// An index of artifacts.
	_, am := reg.push(t, "test/idx:member", testimage.Artifact{Type: "application/x.test", Files: []testimage.ArtifactFile{{Title: "a", Content: "a"}}})
	plat := HostPlatform()
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{
		{MediaType: types.OCIManifestSchema1, Digest: am.Digest(), Size: int64(len(am.Raw)), Platform: &plat},
	}}
	raw, _ := json.Marshal(idx)
	idxRef, _ := name.ParseReference(reg.host + "/test/idx:1")
	if err := remote.Put(idxRef, testimage.RawManifest{Raw: raw, Type: types.OCIImageIndex}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Pull(ctx, idxRef.String(), PullOptions{}); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "index of OCI artifacts") {
		t.Errorf("pull of an index of artifacts: %v", err)
	}
	assertEmptyStore(t, e)
}

func assertEmptyStore(t *testing.T, e *testEnv) {
	t.Helper()
	if imgs := e.s.List(); len(imgs) != 0 {
		t.Errorf("images left: %v", imgs)
	}
	for _, d := range []string{e.s.layersDir(), e.s.blobDir()} {
		if ents, _ := os.ReadDir(d); len(ents) != 0 {
			t.Errorf("%s not empty: %d entries", d, len(ents))
		}
	}
}

// TestImportArtifactRefused: an archive holding an artifact says so, rather
// than that its config lacks diff IDs.
func TestImportArtifactRefused(t *testing.T) {
	e := newEnv(t)
	img := mutate.ConfigMediaType(makeImage(t, "art", rawLayer([]byte("plain file"))), types.OCIEmptyJSON)
	lpDir := filepath.Join(e.dir, "oci")
	writeOCILayout(t, lpDir, img, map[string]string{annotationRefName: "example.com/art:v1"})
	p := filepath.Join(e.dir, "art.tar")
	tarDir(t, lpDir, p)
	if _, err := e.s.Import(context.Background(), p); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "is an OCI artifact (application/vnd.oci.empty.v1+json)") {
		t.Errorf("import of an artifact: %v", err)
	}
	assertEmptyStore(t, e)
}
