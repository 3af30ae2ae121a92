package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth-project/berth/internal/errdefs"
)

// OCI artifacts as image volumes, as CRI-O mounts them: an artifact is a
// manifest whose layers are plain files, each named by its title
// annotation. berth keeps the layer blobs as they are (never unpacked as
// tar) and links them under their titles into one read-only files dir,
// which is the artifact's only "layer": an image volume mounts it the way
// it mounts a runnable image's layers, image_sub_path included. An
// artifact is never a container's rootfs.

// Annotations that name an artifact layer's file: the OCI title (what oras
// and podman artifact push set) and, as CRI-O also accepts, the CNCF model
// spec's file path.
const (
	AnnotationTitle         = "org.opencontainers.image.title"
	AnnotationModelFilepath = "org.cnai.model.filepath"
)

// MaxArtifactFiles caps the layers (files) of one artifact. Their bytes
// together count against images.max_layer_unpacked_bytes, as one layer's.
const MaxArtifactFiles = 4096

// maxTitleBytes caps a title (a relative path); maxNameBytes each of its
// components, as Linux does.
const (
	maxTitleBytes = 4096
	maxNameBytes  = 255
)

// Artifact is what an image record keeps of an OCI artifact.
type Artifact struct {
	// Type is the manifest's artifactType, else its config's media type.
	Type string `json:"type"`
	// Files are the artifact's layers in manifest order.
	Files []ArtifactFile `json:"files"`
}

// ArtifactFile is one layer of an artifact: a file at Path (its title).
type ArtifactFile struct {
	// Path is relative to the artifact's root, clean and inside it.
	Path      string `json:"path"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	MediaType string `json:"mediaType,omitempty"`
}

func (a *Artifact) clone() *Artifact {
	if a == nil {
		return nil
	}
	c := *a
	c.Files = slices.Clone(a.Files)
	return &c
}

// Paths lists the artifact's file paths, for messages.
func (a *Artifact) Paths() []string {
	out := make([]string, 0, len(a.Files))
	for _, f := range a.Files {
		out = append(out, f.Path)
	}
	return out
}

// IsArtifact says whether a manifest (of media type mt) is an OCI artifact
// rather than a runnable image, by CRI-O's rule: a config that is not an
// image config (e.g. application/vnd.oci.empty.v1+json), or an OCI
// manifest with an image config that declares an artifactType.
func IsArtifact(mt types.MediaType, m *v1.Manifest) bool {
	switch m.Config.MediaType {
	case "", types.OCIConfigJSON, types.DockerConfigJSON:
		return m.ArtifactType != "" && mt != types.DockerManifestSchema2 && m.MediaType != types.DockerManifestSchema2
	}
	return true
}

// ParseArtifact checks an artifact manifest and returns what berth
// records of it. Every layer must name its file with a title that is a
// clean relative path inside the artifact (no "..", no leading "/"), no
// two files may share a path or be file and directory at once, and the
// files together stay within maxBytes and MaxArtifactFiles. Refusals are
// InvalidArgument (ResourceExhausted for the limits) naming the layer.
func ParseArtifact(m *v1.Manifest, maxBytes int64) (*Artifact, error) {
	if len(m.Layers) == 0 {
		return nil, errdefs.Invalid("the artifact has no layers: nothing to mount")
	}
	if len(m.Layers) > MaxArtifactFiles {
		return nil, &limitError{msg: fmt.Sprintf("the artifact has %d layers, more than the %d berth mounts", len(m.Layers), MaxArtifactFiles)}
	}
	if err := checkDigest(m.Config.Digest, "artifact config"); err != nil {
		return nil, err
	}
	a := &Artifact{Type: artifactType(m)}
	var total int64
	seen := make(map[string]bool, len(m.Layers))
	for i, l := range m.Layers {
		what := fmt.Sprintf("layer %d (%s)", i+1, l.Digest)
		if err := checkDigest(l.Digest, "artifact layer"); err != nil {
			return nil, err
		}
		if l.Size < 0 {
			return nil, errdefs.Invalid(fmt.Sprintf("%s has a negative size", what))
		}
		if total += l.Size; total > maxBytes {
			return nil, &limitError{msg: fmt.Sprintf("the artifact's files are more than images.max_layer_unpacked_bytes (%d bytes) together (at %s); "+
				"raise the limit if the artifact is trusted and this large", maxBytes, what)}
		}
		title := artifactTitle(l.Annotations)
		if title == "" {
			return nil, errdefs.Invalid(fmt.Sprintf("%s has no %s annotation, so it has no file name to be mounted under", what, AnnotationTitle))
		}
		if err := checkTitle(title); err != nil {
			return nil, errdefs.Invalid(fmt.Sprintf("%s: title %q %s", what, title, err))
		}
		if seen[title] {
			return nil, errdefs.Invalid(fmt.Sprintf("%s: title %q names a file of another layer too", what, title))
		}
		seen[title] = true
		a.Files = append(a.Files, ArtifactFile{Path: title, Digest: l.Digest.String(), Size: l.Size, MediaType: string(l.MediaType)})
	}
	// A path cannot be a file and the directory of another file at once.
	for p := range seen {
		for dir := filepath.Dir(p); dir != "."; dir = filepath.Dir(dir) {
			if seen[dir] {
				return nil, errdefs.Invalid(fmt.Sprintf("title %q is a file, and title %q needs it to be a directory", dir, p))
			}
		}
	}
	return a, nil
}

// artifactType is the manifest's artifactType, else its config's media
// type, as the OCI image spec says to read an artifact's type.
func artifactType(m *v1.Manifest) string {
	if m.ArtifactType != "" {
		return m.ArtifactType
	}
	return string(m.Config.MediaType)
}

func artifactTitle(ann map[string]string) string {
	if t := ann[AnnotationTitle]; t != "" {
		return t
	}
	return ann[AnnotationModelFilepath]
}

// checkTitle says what is wrong with a title as a path inside the
// artifact, or nil. Titles may name files in directories ("conf/a.yaml"),
// as oras pushes them; CRI-O's image_sub_path picks such directories.
func checkTitle(t string) error {
	switch {
	case len(t) > maxTitleBytes:
		return fmt.Errorf("is longer than %d bytes", maxTitleBytes)
	case !utf8.ValidString(t) || strings.ContainsRune(t, 0):
		return fmt.Errorf("is not a valid UTF-8 path")
	case strings.HasPrefix(t, "/"):
		return fmt.Errorf("is an absolute path; it must be relative to the artifact")
	case t == "." || !filepath.IsLocal(t) || filepath.Clean(t) != t:
		return fmt.Errorf(`is not a clean path inside the artifact (no "..", ".", empty or trailing components)`)
	}
	for _, c := range strings.Split(t, "/") {
		if len(c) > maxNameBytes {
			return fmt.Errorf("has a component longer than %d bytes", maxNameBytes)
		}
	}
	return nil
}

// artifactFilesKey names the files dir of the artifact with manifest
// digest m under layers/. It is a digest of a string no layer's diff ID can
// be the digest of (a tar stream is never this short text), so it never
// names a real layer.
func artifactFilesKey(m v1.Hash) v1.Hash {
	sum := sha256.Sum256([]byte("berth OCI artifact files of " + m.String()))
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// ArtifactFiles makes the files dir of an artifact whose layer blobs the
// session stored (each checked against its size here): a dir under
// layers/ holding each blob, hard-linked and read-only, at its path. It is
// built in tmp/ and renamed into place, so it is whole or absent. It
// returns the dir's key, which Commit records as the image's one layer.
func (in *Ingest) ArtifactFiles(ctx context.Context, manifest v1.Hash, a *Artifact) (v1.Hash, error) {
	s := in.s
	key := artifactFilesKey(manifest)
	in.lease(layerKey(key.String()))
	unlock, err := s.chainLocks.lock(ctx, key.String())
	if err != nil {
		return key, err
	}
	defer unlock()
	dir := s.layerDir(key.String())
	if _, err := os.Stat(dir); err == nil {
		return key, nil
	}
	tmp, err := os.MkdirTemp(s.tmpDir(), "artifact-")
	if err != nil {
		return key, fmt.Errorf("create temp artifact dir: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	// The dir is the image volume's root, readable by the container's users.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return key, err
	}
	for _, f := range a.Files {
		if err := ctx.Err(); err != nil {
			return key, err
		}
		d, err := v1.NewHash(f.Digest)
		if err != nil || checkDigest(d, "artifact layer") != nil {
			return key, errdefs.Invalid(fmt.Sprintf("artifact file %q has digest %q, not sha256:<64 hex digits>", f.Path, f.Digest))
		}
		blob := s.blobPath(d)
		fi, err := os.Stat(blob)
		if err != nil {
			return key, errdefs.Precondition(fmt.Sprintf("artifact file %q (blob %s) is not in the content store: %v", f.Path, d, err))
		}
		if fi.Size() != f.Size {
			return key, errdefs.Invalid(fmt.Sprintf("artifact file %q (blob %s) has %d bytes, its manifest says %d", f.Path, d, fi.Size(), f.Size))
		}
		// Blobs are in a root-only dir: the mode only matters through the
		// mount, where the container's users read the files.
		if err := os.Chmod(blob, 0o444); err != nil {
			return key, err
		}
		p := filepath.Join(tmp, f.Path) // f.Path is checked clean and local
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return key, fmt.Errorf("artifact file %q: %w", f.Path, err)
		}
		if err := os.Link(blob, p); err != nil {
			return key, fmt.Errorf("artifact file %q: %w", f.Path, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return key, fmt.Errorf("store artifact files dir %s: %w", key, err)
	}
	in.setWrote()
	// Ours: a session that fails from here on removes it.
	in.mu.Lock()
	if in.unpacked == nil {
		in.unpacked = map[string]bool{}
	}
	in.unpacked[key.String()] = true
	in.mu.Unlock()
	return key, nil
}

// CommitArtifact records the artifact whose manifest, config and layer
// blobs the session stored and whose files dir ArtifactFiles made. Its id
// is its manifest digest: artifacts commonly share one empty config.
func (in *Ingest) CommitArtifact(ctx context.Context, spec CommitSpec, a *Artifact, files v1.Hash) (*Image, error) {
	s := in.s
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tags, digests, target, err := commitNames(spec)
	if err != nil {
		return nil, err
	}
	raw, err := s.ReadBlob(spec.Manifest)
	if err != nil {
		return nil, fmt.Errorf("commit artifact: read manifest: %w", err)
	}
	m, err := v1.ParseManifest(strings.NewReader(string(raw)))
	if err != nil {
		return nil, errdefs.Invalid(fmt.Sprintf("manifest %s does not parse: %v", spec.Manifest, err))
	}
	if _, err := os.Stat(s.layerDir(files.String())); err != nil {
		return nil, errdefs.Precondition(fmt.Sprintf("files of artifact %s are not in place; ingest them first", spec.Manifest))
	}
	blobs := []string{spec.Manifest.String(), m.Config.Digest.String()}
	if target != spec.Manifest {
		blobs = append(blobs, target.String())
	}
	var size int64
	for _, f := range a.Files {
		blobs = appendUnique(blobs, f.Digest)
		size += f.Size
	}
	for _, b := range blobs {
		if h, err := v1.NewHash(b); err != nil || !s.HasBlob(h) {
			return nil, errdefs.Precondition(fmt.Sprintf("blob %s of artifact %s is not in the content store", b, spec.Manifest))
		}
	}
	return in.record(spec.Manifest.String(), tags, digests, spec.Pinned, func(img *Image) {
		img.Config = v1.ConfigFile{}
		img.Artifact = a.clone()
		img.ChainIDs = []string{files.String()}
		// As CRI-O reports it: the files' bytes.
		img.Size = size
		img.Manifest = spec.Manifest.String()
		for _, b := range blobs {
			img.Blobs = appendUnique(img.Blobs, b)
		}
	})
}
