package testimage

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ArtifactFile is one file of an OCI artifact: a layer blob whose
// org.opencontainers.image.title annotation is Title ("" sets none).
type ArtifactFile struct {
	Title   string
	Content string
}

// Artifact is an OCI artifact as oras pushes one: the empty config
// (application/vnd.oci.empty.v1+json, "{}"), an artifactType, and one
// plain (not tar) layer per file.
type Artifact struct {
	Type  string
	Files []ArtifactFile
}

// RawManifest is a manifest to push as it is (remote.Put).
type RawManifest struct {
	Raw  []byte
	Type types.MediaType
}

func (r RawManifest) RawManifest() ([]byte, error)        { return r.Raw, nil }
func (r RawManifest) MediaType() (types.MediaType, error) { return r.Type, nil }

// Digest is the manifest's digest.
func (r RawManifest) Digest() v1.Hash {
	h, _, _ := v1.SHA256(bytes.NewReader(r.Raw))
	return h
}

// Push writes the artifact's blobs and manifest as ref and returns the
// manifest.
func (a Artifact) Push(ref name.Reference, opts ...remote.Option) (RawManifest, error) {
	cfg := static.NewLayer([]byte("{}"), types.OCIEmptyJSON)
	if err := remote.WriteLayer(ref.Context(), cfg, opts...); err != nil {
		return RawManifest{}, fmt.Errorf("push artifact config: %w", err)
	}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: a.Type, Config: descriptor(cfg, nil)}
	for _, f := range a.Files {
		l := static.NewLayer([]byte(f.Content), "text/plain")
		if err := remote.WriteLayer(ref.Context(), l, opts...); err != nil {
			return RawManifest{}, fmt.Errorf("push artifact file %q: %w", f.Title, err)
		}
		var ann map[string]string
		if f.Title != "" {
			ann = map[string]string{"org.opencontainers.image.title": f.Title}
		}
		m.Layers = append(m.Layers, descriptor(l, ann))
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return RawManifest{}, err
	}
	rm := RawManifest{Raw: raw, Type: types.OCIManifestSchema1}
	if err := remote.Put(ref, rm, opts...); err != nil {
		return RawManifest{}, fmt.Errorf("push artifact manifest: %w", err)
	}
	return rm, nil
}

func descriptor(l v1.Layer, ann map[string]string) v1.Descriptor {
	d, _ := l.Digest()
	n, _ := l.Size()
	mt, _ := l.MediaType()
	return v1.Descriptor{MediaType: mt, Digest: d, Size: n, Annotations: ann}
}
