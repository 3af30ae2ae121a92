package image

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// TestImportSkopeoArchives imports archives written by another tool
// (skopeo's docker-archive, the docker save format with uncompressed
// layers, and oci-archive) to check the formats as others write them.
func TestImportSkopeoArchives(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("skopeo not installed")
	}
	e := newEnv(t)
	img := makeImage(t, "interop",
		gzLayer(t, layerTar(t, dir("bin/"), file("bin/tool", "tool"))),
		gzLayer(t, layerTar(t, dir("etc/"), file("etc/conf", "c"))))
	src := filepath.Join(e.dir, "src")
	writeOCILayout(t, src, img, map[string]string{annotationRefName: "interop"})
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(skopeo, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo %v: %v\n%s", args, err, out)
		}
	}
	dockerArch := filepath.Join(e.dir, "docker.tar")
	ociArch := filepath.Join(e.dir, "oci.tar")
	run("copy", "--quiet", "oci:"+src+":interop", "docker-archive:"+dockerArch+":example.com/interop:docker")
	run("copy", "--quiet", "oci:"+src+":interop", "oci-archive:"+ociArch+":example.com/interop:oci")

	a := importOne(t, e, dockerArch)
	b := importOne(t, e, ociArch)
	if a.ID != b.ID {
		t.Fatalf("the two archives of one image gave ids %s and %s", a.ID, b.ID)
	}
	got, err := e.s.Get(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got.RepoTags)
	if want := []string{"example.com/interop:docker", "example.com/interop:oci"}; !slices.Equal(got.RepoTags, want) {
		t.Fatalf("tags = %v, want %v", got.RepoTags, want)
	}
	dirs := e.s.LayerDirs(got)
	if b, err := os.ReadFile(filepath.Join(dirs[1], "etc/conf")); err != nil || string(b) != "c" {
		t.Fatalf("layer content: %q %v", b, err)
	}
	// Both imports unpacked the same two layers once.
	if n := e.s.unpacks.Load(); n != 2 {
		t.Fatalf("unpacked %d layers, want 2", n)
	}
	// Removing one name removes the image and everything under it.
	if err := e.s.Remove(context.Background(), "example.com/interop:oci", nil); err != nil {
		t.Fatal(err)
	}
	if len(e.names("layers")) != 0 || len(e.names("content/blobs/sha256")) != 0 {
		t.Fatalf("left after remove: layers %v blobs %v", e.names("layers"), e.names("content/blobs/sha256"))
	}
}
