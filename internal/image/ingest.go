package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/store"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/moby/go-archive"
)

// Compression is how a layer blob is compressed, as found by its magic
// bytes (the media type is not trusted for this).
type Compression string

const (
	Uncompressed Compression = "none"
	Gzip         Compression = "gzip"
	Zstd         Compression = "zstd"
)

// Ingest is one image being brought in: it leases every blob and layer it
// writes or finds, so that a concurrent GC keeps them until Commit has
// recorded the image. Close it when done; a session closed without a
// successful Commit has what it wrote garbage-collected. Its methods may be
// called concurrently (a pull unpacks layers in parallel), Close last.
type Ingest struct {
	s *Service

	mu        sync.Mutex
	leases    []string
	wrote     bool
	unpacked  map[string]bool // chain IDs whose layer dir this session made
	committed bool
	closed    bool
}

// NewIngest starts an ingest session.
func (s *Service) NewIngest() *Ingest { return &Ingest{s: s} }

// Close releases the session's leases. When nothing was committed, what the
// session wrote is removed by a GC.
func (in *Ingest) Close() {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return
	}
	in.closed = true
	leases, wrote, committed, unpacked := in.leases, in.wrote, in.committed, in.unpacked
	in.leases = nil
	in.mu.Unlock()
	in.s.gcMu.Lock()
	for _, k := range leases {
		if in.s.leases[k]--; in.s.leases[k] <= 0 {
			delete(in.s.leases, k)
		}
	}
	in.s.gcMu.Unlock()
	if wrote && !committed {
		// Only the layer dirs this session made may go: it cannot know
		// which other unreferenced layers containers still use (the
		// caller of Remove and GC does), and its own did not exist before
		// it, so no container is built on them.
		ownOnly := func(chainID string) bool { return !unpacked[chainID] }
		if err := in.s.GC(context.Background(), ownOnly); err != nil {
			in.s.log.Warn("cleaning up after a failed image ingest", "err", err)
		}
	}
}

func (in *Ingest) lease(key string) {
	in.s.gcMu.Lock()
	in.s.leases[key]++
	in.s.gcMu.Unlock()
	in.mu.Lock()
	in.leases = append(in.leases, key)
	in.mu.Unlock()
}

// setWrote notes that the session put something on disk.
func (in *Ingest) setWrote() {
	in.mu.Lock()
	in.wrote = true
	in.mu.Unlock()
}

func blobKey(d v1.Hash) string       { return "blob:" + d.String() }
func layerKey(chainID string) string { return "layer:" + chainID }

func checkDigest(d v1.Hash, what string) error {
	if d.Algorithm != "sha256" || len(d.Hex) != 64 || !isHex(d.Hex) {
		return errdefs.Invalid(fmt.Sprintf("%s digest %q is not sha256:<64 hex digits>", what, d.String()))
	}
	return nil
}

// HasBlob reports whether the content store holds the blob.
func (s *Service) HasBlob(d v1.Hash) bool {
	if checkDigest(d, "blob") != nil {
		return false
	}
	_, err := os.Stat(s.blobPath(d))
	return err == nil
}

// ReadBlob returns the content of a (small) blob, e.g. a manifest or config.
func (s *Service) ReadBlob(d v1.Hash) ([]byte, error) {
	if err := checkDigest(d, "blob"); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(s.blobPath(d))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", d, errdefs.ErrNotFound)
	}
	return b, err
}

// WriteBlob stores a blob whose digest is known (manifest, index, config),
// verifying digest and size (a zero desc.Size is not checked). A blob already
// present is not read again.
func (in *Ingest) WriteBlob(ctx context.Context, desc v1.Descriptor, r io.Reader) error {
	if err := checkDigest(desc.Digest, "blob"); err != nil {
		return err
	}
	in.lease(blobKey(desc.Digest))
	if in.s.HasBlob(desc.Digest) {
		return nil
	}
	tmp, err := os.CreateTemp(in.s.tmpDir(), "blob-")
	if err != nil {
		return fmt.Errorf("create temp blob: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	defer tmp.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), ctxReader{ctx, r})
	if err != nil {
		return fmt.Errorf("write blob %s: %w", desc.Digest, err)
	}
	if err := verify(desc.Digest, desc.Size, h, n, "blob"); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync blob %s: %w", desc.Digest, err)
	}
	if err := os.Rename(tmp.Name(), in.s.blobPath(desc.Digest)); err != nil {
		return fmt.Errorf("store blob %s: %w", desc.Digest, err)
	}
	in.setWrote()
	return nil
}

// LayerSpec describes one layer to ingest.
type LayerSpec struct {
	// Blob is the layer blob as the manifest lists it. A zero Digest
	// (docker-save archives) means it is computed while reading; a zero
	// Size is not checked.
	Blob v1.Descriptor
	// DiffID is the digest of the uncompressed tar from the config's
	// rootfs.diff_ids; it is always verified.
	DiffID v1.Hash
	// Parent is the chain ID of the layers below; zero for the base layer.
	Parent v1.Hash
}

// LayerResult is what Layer stored.
type LayerResult struct {
	ChainID     v1.Hash
	Blob        v1.Descriptor // digest and size as stored
	Compression Compression
}

// ChainID returns the OCI chain ID of a layer with diffID over parent (zero
// for the base layer).
func ChainID(parent, diffID v1.Hash) v1.Hash {
	if parent == (v1.Hash{}) {
		return diffID
	}
	sum := sha256.Sum256([]byte(parent.String() + " " + diffID.String()))
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// Layer stores a layer blob in the content store and unpacks it into its
// layer dir in one pass over the stream from open: the compressed bytes go
// to a temp file and a digester, the decompressed bytes to a second digester
// and to the tar unpacker, which writes a temp dir. Only when both digests
// match are the blob and the dir renamed into place; on any error both are
// discarded. When blob and layer dir are already there, open is not called.
// Concurrent calls for the same chain ID unpack it once.
func (in *Ingest) Layer(ctx context.Context, spec LayerSpec, open func() (io.ReadCloser, error)) (LayerResult, error) {
	var res LayerResult
	if err := checkDigest(spec.DiffID, "layer diff ID"); err != nil {
		return res, err
	}
	if spec.Parent != (v1.Hash{}) {
		if err := checkDigest(spec.Parent, "parent chain ID"); err != nil {
			return res, err
		}
	}
	known := spec.Blob.Digest != (v1.Hash{})
	if known {
		if err := checkDigest(spec.Blob.Digest, "layer blob"); err != nil {
			return res, err
		}
	}
	chainID := ChainID(spec.Parent, spec.DiffID)
	res.ChainID = chainID
	in.lease(layerKey(chainID.String()))
	if known {
		in.lease(blobKey(spec.Blob.Digest))
	}
	unlock, err := in.s.chainLocks.lock(ctx, chainID.String())
	if err != nil {
		return res, err
	}
	defer unlock()

	dir := in.s.layerDir(chainID.String())
	_, statErr := os.Stat(dir)
	haveLayer := statErr == nil
	if haveLayer && known {
		if fi, err := os.Stat(in.s.blobPath(spec.Blob.Digest)); err == nil {
			res.Blob = spec.Blob
			res.Blob.Size = fi.Size()
			res.Compression = compressionOf(spec.Blob.MediaType)
			return res, nil
		}
	}
	start := time.Now()
	rc, err := open()
	if err != nil {
		return res, fmt.Errorf("open layer %s: %w", chainID, err)
	}
	defer rc.Close()

	blobTmp, err := os.CreateTemp(in.s.tmpDir(), "blob-")
	if err != nil {
		return res, fmt.Errorf("create temp blob: %w", err)
	}
	defer os.Remove(blobTmp.Name())
	defer blobTmp.Close()
	var layerTmp string
	if !haveLayer {
		if layerTmp, err = os.MkdirTemp(in.s.tmpDir(), "layer-"); err != nil {
			return res, fmt.Errorf("create temp layer dir: %w", err)
		}
		defer os.RemoveAll(layerTmp) // a no-op once renamed
		// MkdirTemp makes 0700; the layer root becomes the container's "/".
		if err := os.Chmod(layerTmp, 0o755); err != nil {
			return res, err
		}
	}

	what := "layer " + spec.DiffID.String() + " (diff ID)"
	if known {
		what = "layer " + spec.Blob.Digest.String()
	}
	limit := in.s.maxLayerBytes.Load()
	blobHash := sha256.New()
	counted := &countingWriter{limit: limit, what: what}
	compressed := bufio.NewReaderSize(io.TeeReader(ctxReader{ctx, rc}, io.MultiWriter(counted, blobTmp, blobHash)), 64<<10)
	comp, plain, err := decompress(compressed)
	if err != nil {
		return res, fmt.Errorf("layer %s: %w", chainID, err)
	}
	defer plain.Close()
	diffHash := sha256.New()
	// The guard sees every tar header before the unpacker does and stops
	// the stream once the entries declare more than the limit; see tarGuard.
	guard := newTarGuard(limit, in.s.maxLayerEntries.Load(), what)
	defer guard.Close()
	tarStream := io.TeeReader(plain, io.MultiWriter(diffHash, guard))
	if !haveLayer {
		opts := &archive.TarOptions{WhiteoutFormat: archive.OverlayWhiteoutFormat}
		if err := archive.Unpack(tarStream, layerTmp, opts); err != nil {
			if gerr := guardErr(guard); gerr != nil {
				return res, gerr
			}
			return res, fmt.Errorf("unpack layer with diff ID %s: %w", spec.DiffID, err)
		}
	}
	// The tar end marker may be followed by padding, and a compressed
	// stream by its trailer: all of it is part of what the digests cover.
	if _, err := io.Copy(io.Discard, tarStream); err != nil {
		if gerr := guardErr(guard); gerr != nil {
			return res, gerr
		}
		return res, fmt.Errorf("read layer %s: %w", chainID, err)
	}
	if err := guard.Close(); err != nil {
		return res, err
	}
	if _, err := io.Copy(io.Discard, compressed); err != nil {
		return res, fmt.Errorf("read layer %s: %w", chainID, err)
	}
	if err := verify(spec.DiffID, 0, diffHash, 0, "layer "+chainID.String()+" uncompressed"); err != nil {
		return res, err
	}
	blobDigest := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(blobHash.Sum(nil))}
	if known {
		if err := verify(spec.Blob.Digest, spec.Blob.Size, blobHash, counted.n, "layer blob"); err != nil {
			return res, err
		}
	} else {
		in.lease(blobKey(blobDigest))
	}
	if err := blobTmp.Sync(); err != nil {
		return res, fmt.Errorf("sync layer blob: %w", err)
	}
	if err := os.Rename(blobTmp.Name(), in.s.blobPath(blobDigest)); err != nil {
		return res, fmt.Errorf("store layer blob %s: %w", blobDigest, err)
	}
	in.setWrote()
	if !haveLayer {
		if err := os.Rename(layerTmp, dir); err != nil {
			return res, fmt.Errorf("store layer dir %s: %w", chainID, err)
		}
		in.s.unpacks.Add(1)
		in.mu.Lock()
		if in.unpacked == nil {
			in.unpacked = map[string]bool{}
		}
		in.unpacked[chainID.String()] = true
		in.mu.Unlock()
	}
	res.Blob = spec.Blob
	res.Blob.Digest = blobDigest
	res.Blob.Size = counted.n
	res.Compression = comp
	in.s.log.Debug("layer ingested", "chainID", chainID.String(), "blob", blobDigest.String(),
		"size", counted.n, "compression", string(comp), "unpacked", !haveLayer, "took", time.Since(start))
	return res, nil
}

func verify(want v1.Hash, wantSize int64, h hash.Hash, n int64, what string) error {
	got := hex.EncodeToString(h.Sum(nil))
	if got != want.Hex {
		return errdefs.Invalid(fmt.Sprintf("%s content does not match its digest: expected %s, got sha256:%s (corrupt or tampered)", what, want, got))
	}
	if wantSize > 0 && n != wantSize {
		return errdefs.Invalid(fmt.Sprintf("%s %s has %d bytes, expected %d", what, want, n, wantSize))
	}
	return nil
}

// decompress picks the decompressor by the stream's magic bytes.
func decompress(r *bufio.Reader) (Compression, io.ReadCloser, error) {
	magic, err := r.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", nil, fmt.Errorf("read layer header: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(r)
		if err != nil {
			return "", nil, fmt.Errorf("open gzip stream: %w", err)
		}
		return Gzip, zr, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(r,
			// The frame header sets how much history the decoder keeps (the
			// library accepts up to 512 MiB, or a single-segment frame's
			// whole content); this bounds it per layer being unpacked.
			zstd.WithDecoderMaxWindow(maxZstdWindow),
			zstd.WithDecoderLowmem(true),
			// Decode in the reader's goroutine: no decoder goroutines,
			// whose panic nothing could recover, and one window in memory.
			zstd.WithDecoderConcurrency(1))
		if err != nil {
			return "", nil, fmt.Errorf("open zstd stream: %w", err)
		}
		return Zstd, zstdReader{zr}, nil
	default:
		return Uncompressed, io.NopCloser(r), nil
	}
}

// maxZstdWindow caps the window a zstd layer may ask for: what the zstd
// CLI uses up to level 19 (8 MiB) and klauspost/compress, which buildkit,
// containerd and containers/image compress with (8 MiB by default), fit
// many times over; only --long or --ultra -22 on large inputs go beyond.
const maxZstdWindow = 64 << 20

// zstdReader reports a frame over maxZstdWindow as InvalidArgument.
type zstdReader struct{ d *zstd.Decoder }

func (z zstdReader) Read(p []byte) (int, error) {
	n, err := z.d.Read(p)
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		err = errdefs.Invalid(fmt.Sprintf("zstd stream asks for a decoding window larger than %d MiB, which berth does not allocate (%v); "+
			"recompress it without --long or --ultra", maxZstdWindow>>20, err))
	}
	return n, err
}

func (z zstdReader) Close() error {
	z.d.Close()
	return nil
}

func compressionOf(mt types.MediaType) Compression {
	switch mt {
	case types.DockerLayer, types.OCILayer, types.OCIRestrictedLayer, types.DockerForeignLayer:
		return Gzip
	case types.OCILayerZStd:
		return Zstd
	}
	return Uncompressed
}

// LayerMediaType is the OCI media type of a layer blob with compression c.
func LayerMediaType(c Compression) types.MediaType {
	switch c {
	case Gzip:
		return types.OCILayer
	case Zstd:
		return types.OCILayerZStd
	}
	return types.OCIUncompressedLayer
}

// countingWriter counts a compressed layer stream and refuses one longer
// than limit (when set).
type countingWriter struct {
	n     int64
	limit int64
	what  string
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	if c.limit > 0 && c.n > c.limit {
		return 0, &limitError{msg: fmt.Sprintf("%s is more than images.max_layer_unpacked_bytes (%d bytes) even compressed", c.what, c.limit)}
	}
	return len(p), nil
}

// guardErr is the guard's verdict when it is what stopped the stream (the
// unpacker may report it wrapped, or only as a failed read).
func guardErr(g *tarGuard) error {
	if g.werr != nil {
		return g.werr
	}
	select {
	case <-g.done:
		return g.err
	default:
		return nil
	}
}

// ctxReader stops a long copy or unpack when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// CommitSpec names what Commit records.
type CommitSpec struct {
	// Manifest is the digest of the image manifest, already in the content
	// store along with its config and layers.
	Manifest v1.Hash
	// Target is what digest references name: the index the manifest was
	// picked from, or zero when that is Manifest itself.
	Target v1.Hash
	// Names are references (short or normalized) to give the image: a tag
	// moves here from any other image; a digest must be Target's.
	Names []string
	// Pinned keeps kubelet's image GC away from the image.
	Pinned bool
}

// Commit records the image whose manifest, config and layers the session
// brought in. An image with the same ID gains the new names. Tags held by
// other images move to this one; those keep their other names, and an image
// left without names stays listed by id.
func (in *Ingest) Commit(ctx context.Context, spec CommitSpec) (*Image, error) {
	s := in.s
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tags, digests, target, err := commitNames(spec)
	if err != nil {
		return nil, err
	}

	rawManifest, err := s.ReadBlob(spec.Manifest)
	if err != nil {
		return nil, fmt.Errorf("commit image: read manifest: %w", err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(rawManifest))
	if err != nil {
		return nil, errdefs.Invalid(fmt.Sprintf("manifest %s does not parse: %v", spec.Manifest, err))
	}
	rawConfig, err := s.ReadBlob(m.Config.Digest)
	if err != nil {
		return nil, fmt.Errorf("commit image: read config: %w", err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
	if err != nil {
		return nil, errdefs.Invalid(fmt.Sprintf("image config %s does not parse: %v", m.Config.Digest, err))
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, errdefs.Invalid(fmt.Sprintf("manifest %s lists %d layers but its config has %d diff IDs",
			spec.Manifest, len(m.Layers), len(cfg.RootFS.DiffIDs)))
	}
	blobs := []string{spec.Manifest.String(), m.Config.Digest.String()}
	if target != spec.Manifest {
		blobs = append(blobs, target.String())
	}
	size := int64(len(rawConfig))
	var chainIDs []string
	var parent v1.Hash
	for i, l := range m.Layers {
		chain := ChainID(parent, cfg.RootFS.DiffIDs[i])
		parent = chain
		if _, err := os.Stat(s.layerDir(chain.String())); err != nil {
			return nil, errdefs.Precondition(fmt.Sprintf("layer %d (chain ID %s) of manifest %s is not unpacked; ingest it first", i, chain, spec.Manifest))
		}
		if !s.HasBlob(l.Digest) {
			return nil, errdefs.Precondition(fmt.Sprintf("layer blob %s of manifest %s is not in the content store; ingest it first", l.Digest, spec.Manifest))
		}
		chainIDs = append(chainIDs, chain.String())
		blobs = appendUnique(blobs, l.Digest.String())
		size += l.Size
	}
	for _, b := range blobs {
		if h, err := v1.NewHash(b); err != nil || !s.HasBlob(h) {
			return nil, errdefs.Precondition(fmt.Sprintf("blob %s of manifest %s is not in the content store", b, spec.Manifest))
		}
	}
	id := m.Config.Digest.String()
	return in.record(id, tags, digests, spec.Pinned, func(img *Image) {
		img.Config = *cfg
		img.ChainIDs = chainIDs
		img.Size = size
		img.Manifest = spec.Manifest.String()
		for _, b := range blobs {
			img.Blobs = appendUnique(img.Blobs, b)
		}
	})
}

// commitNames checks a commit's manifest, target and names, and returns
// the tags and digest references to record.
func commitNames(spec CommitSpec) (tags, digests []string, target v1.Hash, err error) {
	if err := checkDigest(spec.Manifest, "manifest"); err != nil {
		return nil, nil, target, err
	}
	target = spec.Target
	if target == (v1.Hash{}) {
		target = spec.Manifest
	} else if err := checkDigest(target, "target"); err != nil {
		return nil, nil, target, err
	}
	for _, n := range spec.Names {
		ref, err := ParseReference(n)
		if err != nil {
			return nil, nil, target, err
		}
		if ref.Digest != "" {
			if ref.Digest != target.String() {
				return nil, nil, target, errdefs.Invalid(fmt.Sprintf("image name %q names digest %s, but the image is %s", n, ref.Digest, target))
			}
		} else {
			tags = appendUnique(tags, ref.String())
		}
		digests = appendUnique(digests, ref.Repo+"@"+target.String())
	}
	return tags, digests, target, nil
}

// record saves the image record id (new, or the one there gaining names),
// as fill sets it, with tags and digests added; tags move here from other
// images. It marks the session committed.
func (in *Ingest) record(id string, tags, digests []string, pinned bool, fill func(*Image)) (*Image, error) {
	s := in.s
	s.mu.Lock()
	defer s.mu.Unlock()
	var img *Image
	if old := s.images[id]; old != nil {
		img = old.clone()
	} else {
		img = &Image{ID: id, Created: time.Now().UTC()}
	}
	fill(img)
	img.Pinned = img.Pinned || pinned
	for _, t := range tags {
		img.RepoTags = appendUnique(img.RepoTags, t)
	}
	for _, d := range digests {
		img.RepoDigests = appendUnique(img.RepoDigests, d)
	}
	// Save the new record first: if saving a loser fails, the tag is
	// recorded twice, and the next commit or remove settles it.
	if err := s.st.Put(store.Images, id, img); err != nil {
		return nil, fmt.Errorf("save image record %s: %w", id, err)
	}
	s.images[id] = img
	for otherID, other := range s.images {
		if otherID == id {
			continue
		}
		kept := slices.DeleteFunc(slices.Clone(other.RepoTags), func(t string) bool { return slices.Contains(tags, t) })
		if len(kept) == len(other.RepoTags) {
			continue
		}
		next := other.clone()
		next.RepoTags = kept
		if err := s.st.Put(store.Images, otherID, next); err != nil {
			return nil, fmt.Errorf("move tags from image %s: %w", otherID, err)
		}
		s.images[otherID] = next
		s.log.Info("image tag moved", "from", otherID, "to", id, "tags", tags)
	}
	in.mu.Lock()
	in.committed = true
	in.mu.Unlock()
	s.kickUsage()
	s.log.Info("image recorded", "image", id, "tags", img.RepoTags, "layers", len(img.ChainIDs), "size", img.Size, "artifact", img.Artifact != nil)
	return img.clone(), nil
}

func appendUnique(list []string, v string) []string {
	if slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}
