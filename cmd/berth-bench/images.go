package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth-project/berth/test/testimage"
)

// The bench's images, by repository path in the registry. Runtimes pull
// them as <upstream>/<path> through a registry mirror (hosts.toml) that
// points <upstream> at the registry, or as <registry>/<path>.
const (
	busyboxRepo = "busybox:1"        // the workload: Debian's static busybox, one layer
	pullRepo    = "pull:1"           // what the pull step pulls: random layers
	pauseRepo   = "pause:3.10.2"     // a pause look-alike for runtimes with an infra container
	upstream    = "bench.berth.test" // the default names' registry host
)

type imageOptions struct {
	registry    string // host:port of a plain-HTTP registry
	pauseBinary string // static binary to run as /pause; empty: no pause image
	pullLayers  int
	pullLayerMB int
}

// pushImages builds the bench images and pushes them to the registry.
func pushImages(o imageOptions) error {
	busybox, err := testimage.BusyboxImage()
	if err != nil {
		return err
	}
	imgs := map[string]v1.Image{busyboxRepo: busybox}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	// Incompressible data from a fixed seed: the same digests every run,
	// and gzip cannot shrink the download.
	rng := rand.New(rand.NewChaCha8([32]byte{'b', 'e', 'r', 't', 'h'}))
	var layers []testimage.Layer
	for i := range o.pullLayers {
		data := make([]byte, o.pullLayerMB<<20)
		for j := 0; j < len(data); j += 8 {
			v := rng.Uint64()
			for k := 0; k < 8 && j+k < len(data); k++ {
				data[j+k] = byte(v >> (8 * k))
			}
		}
		layers = append(layers, testimage.Layer{Files: map[string]string{fmt.Sprintf("/data/layer-%d", i): string(data)}})
	}
	if imgs[pullRepo], err = testimage.Build(testimage.Options{Base: base, Layers: layers, Cmd: []string{"/data"}}); err != nil {
		return fmt.Errorf("build the pull image: %w", err)
	}
	if o.pauseBinary != "" {
		bin, err := os.ReadFile(o.pauseBinary)
		if err != nil {
			return fmt.Errorf("pause binary: %w", err)
		}
		l := testimage.Layer{Files: map[string]string{"/pause": string(bin)}, Modes: map[string]os.FileMode{"/pause": 0o755}}
		if imgs[pauseRepo], err = testimage.Build(testimage.Options{Base: base, Layers: []testimage.Layer{l}, Entrypoint: []string{"/pause"}}); err != nil {
			return fmt.Errorf("build the pause image: %w", err)
		}
	}
	for repo, img := range imgs {
		ref, err := name.ParseReference(o.registry+"/"+repo, name.Insecure)
		if err != nil {
			return err
		}
		if err := remote.Write(ref, img, remote.WithTransport(http.DefaultTransport)); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
		fmt.Printf("pushed %s\n", ref)
	}
	return nil
}
