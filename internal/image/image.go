package image

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/store"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Image is one image record. It is keyed by ID, and all names (tags and
// digests) of the same config share it.
type Image struct {
	// ID is "sha256:<config digest hex>", the image id everywhere.
	ID string `json:"id"`
	// RepoTags are normalized tag references, e.g.
	// "docker.io/library/busybox:latest". A tag names one image at a time.
	RepoTags []string `json:"repoTags,omitempty"`
	// RepoDigests are normalized digest references, repo@<manifest or
	// index digest>.
	RepoDigests []string `json:"repoDigests,omitempty"`
	// Size is the sum of the compressed layer sizes and the config size,
	// as containerd reports it.
	Size int64 `json:"size"`
	// Config is the image config. Config.Config holds what a container
	// is built from: Entrypoint, Cmd, Env, WorkingDir, User, StopSignal,
	// Labels, Volumes. It is data from outside: validate before acting on it.
	Config v1.ConfigFile `json:"config"`
	// Manifest is the digest of the image manifest the layers come from.
	Manifest string `json:"manifest"`
	// ChainIDs are the layers' OCI chain IDs ("sha256:<hex>"), lowest
	// first. Each names a directory under layers/ (see LayerDirs).
	ChainIDs []string `json:"chainIDs"`
	// Blobs are the content-store digests the image holds: manifests,
	// indexes, config and layer blobs.
	Blobs []string `json:"blobs"`
	// Artifact is set for an OCI artifact (see ParseArtifact): its one
	// "layer" in ChainIDs is its files dir, Config is empty, and it is
	// only mountable as an image volume, never a container's rootfs.
	Artifact *Artifact `json:"artifact,omitempty"`
	// Pinned images are never garbage-collected by kubelet.
	Pinned bool `json:"pinned,omitempty"`
	// Created is when berth first recorded the image.
	Created time.Time `json:"created"`
}

func (img *Image) clone() *Image {
	c := *img
	c.RepoTags = slices.Clone(img.RepoTags)
	c.RepoDigests = slices.Clone(img.RepoDigests)
	c.ChainIDs = slices.Clone(img.ChainIDs)
	c.Blobs = slices.Clone(img.Blobs)
	c.Config = *img.Config.DeepCopy()
	c.Artifact = img.Artifact.clone()
	return &c
}

// Service is the image store. It is safe for concurrent use.
type Service struct {
	root string
	st   *store.Store
	log  *slog.Logger

	mu         sync.RWMutex
	images     map[string]*Image          // by ID
	pinnedRefs []string                   // images.pinned_images: refs resolved at each read
	holds      map[string]map[string]bool // image ID -> holders (HoldImage)

	// gcMu serializes garbage collection against lease changes, so that
	// whatever a running ingest has leased (or checked to exist) is never
	// deleted under it.
	gcMu        sync.Mutex
	leases      map[string]int // "blob:<digest>" / "layer:<chainID>" -> holders
	chainLocks  keyedMutex
	usage       usageCache
	closeOnce   sync.Once
	closing     chan struct{}
	loopStopped chan struct{}

	unpacks atomic.Int64 // layers unpacked since New; tests check sharing

	maxLayerBytes   atomic.Int64 // see SetMaxLayerUnpackedBytes
	maxLayerEntries atomic.Int64 // see SetMaxLayerEntries
}

// New opens the image store under root, loads the image records from st and
// removes what a crash left in root/tmp. Close stops its background work.
func New(root string, st *store.Store) (*Service, error) {
	if root == "" || !filepath.IsAbs(root) {
		return nil, errdefs.Invalid(fmt.Sprintf("image store root %q must be an absolute path", root))
	}
	s := &Service{
		root:        filepath.Clean(root),
		st:          st,
		log:         slog.Default().With("component", "image"),
		images:      map[string]*Image{},
		leases:      map[string]int{},
		closing:     make(chan struct{}),
		loopStopped: make(chan struct{}),
	}
	s.chainLocks.init()
	s.usage.init()
	s.maxLayerBytes.Store(DefaultMaxLayerUnpackedBytes)
	s.maxLayerEntries.Store(DefaultMaxLayerEntries)
	// Anything in tmp/ is a half-written blob, a half-unpacked layer, an
	// extracted archive or a layer being deleted when berthd died.
	if err := os.RemoveAll(s.tmpDir()); err != nil {
		return nil, fmt.Errorf("clean image store temp dir %s: %w", s.tmpDir(), err)
	}
	for _, d := range []string{s.blobDir(), s.layersDir(), s.tmpDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create image store dir: %w", err)
		}
		// Layers are the lower dirs of every rootfs: root-only.
		if err := os.Chmod(d, 0o700); err != nil {
			return nil, fmt.Errorf("make image store dir %s root-only: %w", d, err)
		}
	}
	err := store.Load(st, store.Images, func(id string, img *Image) error {
		if img.ID != id {
			s.log.Warn("image record key does not match its id; using the key", "key", id, "id", img.ID)
			img.ID = id
		}
		for _, c := range img.ChainIDs {
			if _, err := os.Stat(s.layerDir(c)); err != nil {
				s.log.Warn("image layer dir is missing; containers from this image will fail until it is pulled again",
					"image", id, "chainID", c, "err", err)
			}
		}
		s.images[id] = img
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load image records: %w", err)
	}
	s.log.Info("image store loaded", "root", s.root, "images", len(s.images))
	go s.usageLoop()
	return s, nil
}

// Close stops the background disk-usage refresh. It does not close the
// record store, which the caller owns.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		<-s.loopStopped
	})
	return nil
}

// SetMaxLayerUnpackedBytes caps what one layer may write when unpacked:
// the sizes its tar entries declare (sparse files at their full size) plus
// a tar block per entry (4 KiB per directory). Layers over it fail with ErrLayerTooLarge
// (errdefs.ErrResourceExhausted) and leave nothing behind. n <= 0 keeps
// the default.
func (s *Service) SetMaxLayerUnpackedBytes(n int64) {
	if n <= 0 {
		n = DefaultMaxLayerUnpackedBytes
	}
	s.maxLayerBytes.Store(n)
}

// SetMaxLayerEntries caps the number of tar entries of one layer (and of an
// imported archive). Layers over it fail like those over the byte limit.
// n <= 0 keeps the default.
func (s *Service) SetMaxLayerEntries(n int64) {
	if n <= 0 {
		n = DefaultMaxLayerEntries
	}
	s.maxLayerEntries.Store(n)
}

// Root is the image store's root dir.
func (s *Service) Root() string { return s.root }

// LayersInUse says whether something outside the image store (a
// container's rootfs) still uses a layer, by chain ID as in Image.ChainIDs.
// GC asks it before deleting a layer dir no image refers to any more, so
// containers built on a removed image keep their layers. It is called while
// the image store holds its GC lock, so it must not call back into Service.
// The caller that owns both images and containers passes it: the image
// store never calls up into containers. nil: no layer is in use.
type LayersInUse func(chainID string) bool

// List returns copies of all image records.
func (s *Service) List() []*Image {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Image, 0, len(s.images))
	pinned := s.pinnedLocked()
	for _, img := range s.images {
		c := img.clone()
		c.Pinned = c.Pinned || pinned[c.ID]
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *Image) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Get returns a copy of the image that ref names: a full id "sha256:<hex>",
// the bare hex id, a unique id prefix of at least 12 hex chars, a tag
// reference (short or full) or a digest reference (repo@sha256:...). A ref
// that does not parse is errdefs.ErrInvalidArgument; an unknown image is
// errdefs.ErrNotFound.
func (s *Service) Get(ref string) (*Image, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	img, err := s.resolveLocked(ref)
	if err != nil {
		return nil, err
	}
	c := img.clone()
	c.Pinned = c.Pinned || s.pinnedLocked()[c.ID]
	return c, nil
}

// SetPinnedRefs sets the references (tags, digests or ids) whose images are
// reported pinned, so kubelet's image garbage collection leaves them alone
// (containerd's pinned_images, CRI-O's pinned_images). They are resolved
// at each read: a pinned tag that moves takes the pin with it, and an
// image pulled later under a pinned name is pinned from then on. Pinning
// does not stop RemoveImage, as in containerd.
func (s *Service) SetPinnedRefs(refs []string) {
	s.mu.Lock()
	s.pinnedRefs = slices.Clone(refs)
	s.mu.Unlock()
}

// pinnedLocked returns the ids of the images the pinned refs name now.
func (s *Service) pinnedLocked() map[string]bool {
	if len(s.pinnedRefs) == 0 {
		return nil
	}
	ids := make(map[string]bool, len(s.pinnedRefs))
	for _, ref := range s.pinnedRefs {
		if img, err := s.resolveLocked(ref); err == nil {
			ids[img.ID] = true
		}
	}
	return ids
}

const minIDPrefix = 12

func (s *Service) resolveLocked(ref string) (*Image, error) {
	if hex, ok := strings.CutPrefix(ref, "sha256:"); ok {
		if !isHex(hex) || len(hex) < minIDPrefix || len(hex) > 64 {
			return nil, errdefs.Invalid(fmt.Sprintf("image id %q is not sha256:<hex digits> (at least %d of 64)", ref, minIDPrefix))
		}
		return s.byIDLocked(ref, hex)
	}
	parsed, perr := ParseReference(ref)
	if perr == nil {
		if img := s.byNameLocked(parsed); img != nil {
			return img, nil
		}
	}
	// Hex strings also parse as repository names; an exact name wins (as
	// in containerd), then the id or a unique id prefix.
	if isHex(ref) && len(ref) >= minIDPrefix && len(ref) <= 64 {
		return s.byIDLocked(ref, ref)
	}
	if perr != nil {
		return nil, perr
	}
	return nil, fmt.Errorf("image %q: %w", ref, errdefs.ErrNotFound)
}

// byIDLocked finds the image whose id is sha256:<hex>, or starts with it.
func (s *Service) byIDLocked(ref, hex string) (*Image, error) {
	if img := s.images["sha256:"+hex]; img != nil {
		return img, nil
	}
	var found *Image
	if len(hex) < 64 {
		for id, img := range s.images {
			if strings.HasPrefix(id, "sha256:"+hex) {
				if found != nil {
					return nil, errdefs.Invalid(fmt.Sprintf("image id prefix %q matches more than one image; give more digits", ref))
				}
				found = img
			}
		}
	}
	if found == nil {
		return nil, fmt.Errorf("image %q: %w", ref, errdefs.ErrNotFound)
	}
	return found, nil
}

func (s *Service) byNameLocked(r Reference) *Image {
	n := r.String()
	for _, img := range s.images {
		if r.Digest != "" {
			if slices.Contains(img.RepoDigests, n) {
				return img
			}
		} else if slices.Contains(img.RepoTags, n) {
			return img
		}
	}
	return nil
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// LayerDirs returns the unpacked layer directories of img, lowest first; an
// overlay lowerdir lists them in reverse.
func (s *Service) LayerDirs(img *Image) []string {
	dirs := make([]string, 0, len(img.ChainIDs))
	for _, c := range img.ChainIDs {
		dirs = append(dirs, s.layerDir(c))
	}
	return dirs
}

// SetPinned marks the image ref names as pinned (or not).
func (s *Service) SetPinned(ref string, pinned bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	img, err := s.resolveLocked(ref)
	if err != nil {
		return err
	}
	if img.Pinned == pinned {
		return nil
	}
	next := img.clone()
	next.Pinned = pinned
	if err := s.st.Put(store.Images, next.ID, next); err != nil {
		return fmt.Errorf("save image %s: %w", next.ID, err)
	}
	s.images[next.ID] = next
	return nil
}

// Remove removes the image ref names with all its names, as containerd's
// CRI RemoveImage does, then garbage-collects blobs and layers nothing uses
// any more (inUse: see LayersInUse). An image that is not there is not an
// error.
func (s *Service) Remove(ctx context.Context, ref string, inUse LayersInUse) error {
	s.mu.Lock()
	img, err := s.resolveLocked(ref)
	if err != nil {
		s.mu.Unlock()
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil
		}
		return err
	}
	if err := s.heldLocked(img.ID); err != nil {
		s.mu.Unlock()
		return err
	}
	if err := s.st.Delete(store.Images, img.ID); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("delete image record %s: %w", img.ID, err)
	}
	delete(s.images, img.ID)
	s.mu.Unlock()
	s.log.Info("image removed", "image", img.ID, "ref", ref, "tags", img.RepoTags)
	defer s.kickUsage()
	if err := s.GC(ctx, inUse); err != nil {
		// The record is gone; leftovers are retried by the next GC.
		s.log.Warn("image garbage collection after remove failed", "image", img.ID, "err", err)
	}
	return nil
}

func (s *Service) blobDir() string   { return filepath.Join(s.root, "content", "blobs", "sha256") }
func (s *Service) layersDir() string { return filepath.Join(s.root, "layers") }
func (s *Service) tmpDir() string    { return filepath.Join(s.root, "tmp") }

// blobPath is the path of a blob; the digest must have been validated.
func (s *Service) blobPath(d v1.Hash) string { return filepath.Join(s.blobDir(), d.Hex) }

// layerDir is the dir of a chain ID "sha256:<hex>" (validated by callers
// that take it from outside; records hold only ids we computed).
func (s *Service) layerDir(chainID string) string {
	return filepath.Join(s.layersDir(), strings.TrimPrefix(chainID, "sha256:"))
}

// keyedMutex hands out one mutex per key, so that two ingests of the same
// layer unpack it once while different layers unpack in parallel.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) init() { k.locks = map[string]*keyedEntry{} }

// lock takes the key's mutex, giving up when ctx ends, and returns its
// unlock function.
func (k *keyedMutex) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	e := k.locks[key]
	if e == nil {
		e = &keyedEntry{}
		k.locks[key] = e
	}
	e.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
	got := make(chan struct{})
	go func() {
		e.mu.Lock()
		close(got)
	}()
	select {
	case <-got:
		return func() { e.mu.Unlock(); release() }, nil
	case <-ctx.Done():
		// The goroutine still takes the lock eventually; hand it back then.
		go func() { <-got; e.mu.Unlock(); release() }()
		return nil, ctx.Err()
	}
}
