package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berth-project/berth/test/e2e/framework"
	"github.com/berth-project/berth/test/testimage"
)

// TestPullLayerBomb pulls an image whose 4 KiB layer is a PAX sparse tar
// describing a 1 TiB file, more than the default
// images.max_layer_unpacked_bytes (64 GiB): the pull fails at once with
// ResourceExhausted naming the image and the layer, and nothing of it is
// left in the image store.
func TestPullLayerBomb(t *testing.T) {
	d := framework.Shared(t)
	reg := framework.StartRegistry(t, framework.RegistryOptions{})
	raw := testimage.SparseTar("bomb", 1<<40, []byte("the end\n"))
	img, layer := rawLayerImage(t, raw)
	digest, _ := layer.Digest()
	reg.Push(t, "e2e/bomb:1", img)
	ref := reg.Ref("e2e/bomb:1")

	layersBefore := dirNames(t, filepath.Join(d.Root, "layers"))
	blobsBefore := dirNames(t, filepath.Join(d.Root, "content", "blobs", "sha256"))
	_, err := pullImage(framework.Ctx(t), d, ref, nil)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("pull of a 1 TiB sparse layer: %v, want ResourceExhausted", err)
	}
	for _, want := range []string{ref, digest.String(), "max_layer_unpacked_bytes", `"bomb"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	absent(t, d, ref)
	noPartialData(t, d)
	if got := dirNames(t, filepath.Join(d.Root, "layers")); !slices.Equal(got, layersBefore) {
		t.Errorf("layers after the refused pull = %v, before %v", got, layersBefore)
	}
	// The manifest and config blobs are removed by the GC that ends a
	// failed ingest.
	err = framework.WaitFor(10*time.Second, func() bool {
		return slices.Equal(dirNames(t, filepath.Join(d.Root, "content", "blobs", "sha256")), blobsBefore)
	})
	if err != nil {
		t.Errorf("blobs after the refused pull = %v, before %v", dirNames(t, filepath.Join(d.Root, "content", "blobs", "sha256")), blobsBefore)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
