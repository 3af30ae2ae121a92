package framework

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/testimage"
)

// The image side of a crash churn: one worker pulls images from a loopback
// registry and removes them while berthd is killed, and every check
// compares the image store on disk with what berthd lists.

// churnImages pushes n images to a new loopback registry and returns their
// references. They share a base layer and each has two layers of its own
// of random (incompressible) bytes, so that a pull takes long enough to be
// killed in and a removal has shared and unshared layers to sort out.
func churnImages(t testing.TB, n int) []string {
	t.Helper()
	reg := StartRegistry(t, RegistryOptions{})
	shared := testimage.Layer{Files: map[string]string{"/churn/shared": randText(512 << 10)}}
	refs := make([]string, n)
	for i := range refs {
		img, err := testimage.Build(testimage.Options{Base: empty.Image, Layers: []testimage.Layer{
			shared,
			{Files: map[string]string{"/churn/a": randText(1 << 20)}},
			{Files: map[string]string{"/churn/b": randText(1 << 20)}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		tag := fmt.Sprintf("churn/img%d:1", i)
		reg.Push(t, tag, img)
		refs[i] = reg.Ref(tag)
	}
	return refs
}

func randText(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// imageWorker pulls and removes the churn images, as kubelet's image
// manager and image GC do, retrying a call a kill cut short.
type imageWorker struct {
	c    *churn
	rng  *mrand.Rand
	refs []string
	have map[string]bool // what the worker believes berthd holds
}

func (w *imageWorker) run() {
	for !w.c.stopping() {
		_, gen, _ := w.c.client()
		ref := w.refs[w.rng.IntN(len(w.refs))]
		if w.have[ref] {
			w.remove(ref)
		} else {
			w.pull(ref)
		}
		if _, now, _ := w.c.client(); now != gen {
			w.audit()
		}
	}
}

func (w *imageWorker) pull(ref string) {
	err := w.c.callImage("PullImage", func(ctx context.Context, is runtimeapi.ImageServiceClient) error {
		_, err := is.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
		return err
	})
	if err != nil {
		w.c.violation("pull "+ref, fmt.Sprintf("image worker: PullImage %s: %v", ref, err))
		return
	}
	w.have[ref] = true
	w.c.count(func(r *ChurnResult) { r.Pulls++ })
}

func (w *imageWorker) remove(ref string) {
	err := w.c.callImage("RemoveImage", func(ctx context.Context, is runtimeapi.ImageServiceClient) error {
		_, err := is.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
		return err
	})
	if err != nil {
		w.c.violation("rmi "+ref, fmt.Sprintf("image worker: RemoveImage %s: %v", ref, err))
		return
	}
	w.have[ref] = false
	w.c.count(func(r *ChurnResult) { r.ImageRemovals++ })
}

// audit checks, after a kill, that berthd holds exactly the images the
// worker's completed calls left.
func (w *imageWorker) audit() {
	for _, ref := range w.refs {
		var listed bool
		err := w.c.callImage("ImageStatus", func(ctx context.Context, is runtimeapi.ImageServiceClient) error {
			resp, err := is.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
			listed = resp.GetImage() != nil
			return err
		})
		switch {
		case err != nil:
			w.c.violation("image-status "+ref, fmt.Sprintf("image worker: ImageStatus %s: %v", ref, err))
		case listed != w.have[ref]:
			w.c.violation(fmt.Sprintf("image-lost %s %v", ref, listed), fmt.Sprintf("image worker: %s listed %v after a restart, but the last completed call left it %v", ref, listed, w.have[ref]))
		}
	}
}

// removeAll removes the worker's images at the end of a run.
func (w *imageWorker) removeAll() {
	for _, ref := range w.refs {
		w.remove(ref)
	}
}

// imageStoreProblems compares berthd's image records (as listed, with the
// verbose ImageStatus' chain IDs and manifest) with the store on disk:
// every listed image has all its layer dirs and blobs (none half present),
// every layer dir and blob belongs to a listed image (nothing left
// unreferenced by a removal or a killed pull), and the store's temp dir is
// empty. It returns key -> message.
func (d *Daemon) imageStoreProblems(ctx context.Context) map[string]string {
	out := map[string]string{}
	list, err := d.Image.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		out["list-images"] = fmt.Sprintf("ListImages after restart: %v", err)
		return out
	}
	blobDir, layerDir := filepath.Join(d.Root, "content", "blobs", "sha256"), filepath.Join(d.Root, "layers")
	keepBlob, keepLayer := map[string]bool{}, map[string]bool{}
	for _, img := range list.Images {
		resp, err := d.Image.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: img.Id}, Verbose: true})
		if err != nil || resp.Image == nil {
			out["image-status "+img.Id] = fmt.Sprintf("listed image %s: ImageStatus %v, %v", img.Id, resp.GetImage(), err)
			continue
		}
		var info struct {
			ChainIDs []string `json:"chainIDs"`
			Manifest string   `json:"manifest"`
		}
		if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil {
			out["image-info "+img.Id] = fmt.Sprintf("image %s: verbose info: %v", img.Id, err)
			continue
		}
		blobs := []string{img.Id, info.Manifest}
		for _, rd := range img.RepoDigests {
			if _, dg, ok := strings.Cut(rd, "@"); ok {
				blobs = append(blobs, dg)
			}
		}
		if raw, err := os.ReadFile(filepath.Join(blobDir, strings.TrimPrefix(info.Manifest, "sha256:"))); err == nil {
			var m struct {
				Layers []struct {
					Digest string `json:"digest"`
				} `json:"layers"`
			}
			if err := json.Unmarshal(raw, &m); err != nil {
				out["manifest "+img.Id] = fmt.Sprintf("image %s: manifest %s does not parse: %v", img.Id, info.Manifest, err)
			}
			for _, l := range m.Layers {
				blobs = append(blobs, l.Digest)
			}
		}
		for _, b := range blobs {
			hexd := strings.TrimPrefix(b, "sha256:")
			keepBlob[hexd] = true
			if _, err := os.Stat(filepath.Join(blobDir, hexd)); err != nil {
				out["blob-missing "+b] = fmt.Sprintf("image %s (%v) is listed but its blob %s is missing: %v", img.Id, img.RepoTags, b, err)
			}
		}
		for _, c := range info.ChainIDs {
			hexd := strings.TrimPrefix(c, "sha256:")
			keepLayer[hexd] = true
			if _, err := os.Stat(filepath.Join(layerDir, hexd)); err != nil {
				out["layer-missing "+c] = fmt.Sprintf("image %s (%v) is listed but its layer %s is missing: %v", img.Id, img.RepoTags, c, err)
			}
		}
	}
	entries, _ := os.ReadDir(blobDir)
	for _, e := range entries {
		if !keepBlob[e.Name()] {
			out["blob-left "+e.Name()] = fmt.Sprintf("blob sha256:%s is in the content store but no listed image refers to it", e.Name())
		}
	}
	entries, _ = os.ReadDir(layerDir)
	for _, e := range entries {
		if !keepLayer[e.Name()] {
			out["layer-left "+e.Name()] = fmt.Sprintf("layer dir sha256:%s is in the store but no listed image refers to it", e.Name())
		}
	}
	entries, _ = os.ReadDir(filepath.Join(d.Root, "tmp"))
	for _, e := range entries {
		out["tmp "+e.Name()] = fmt.Sprintf("image store temp dir holds %s while nothing runs", e.Name())
	}
	return out
}
