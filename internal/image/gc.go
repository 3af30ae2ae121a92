package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// GC removes the blobs that no image record and no running ingest refers
// to, and the layer dirs that additionally no container uses (as inUse
// says; see LayersInUse). A layer dir is renamed into tmp/ before it is
// deleted, so a crash mid-way never leaves a half layer under its name.
func (s *Service) GC(ctx context.Context, inUse LayersInUse) error {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()

	keepBlobs := map[string]bool{}
	keepLayers := map[string]bool{}
	s.mu.RLock()
	for _, img := range s.images {
		for _, b := range img.Blobs {
			keepBlobs[b] = true
		}
		for _, c := range img.ChainIDs {
			keepLayers[c] = true
		}
	}
	s.mu.RUnlock()
	for k := range s.leases {
		if d, ok := strings.CutPrefix(k, "blob:"); ok {
			keepBlobs[d] = true
		} else if c, ok := strings.CutPrefix(k, "layer:"); ok {
			keepLayers[c] = true
		}
	}

	var errs []error
	var removedLayers, removedBlobs int
	layers, err := os.ReadDir(s.layersDir())
	if err != nil {
		return fmt.Errorf("list layer dirs: %w", err)
	}
	for _, e := range layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		chainID := "sha256:" + e.Name()
		if keepLayers[chainID] || (inUse != nil && inUse(chainID)) {
			continue
		}
		trash, err := os.MkdirTemp(s.tmpDir(), "rm-layer-")
		if err != nil {
			return fmt.Errorf("make trash dir: %w", err)
		}
		if err := os.Rename(filepath.Join(s.layersDir(), e.Name()), filepath.Join(trash, "l")); err != nil {
			errs = append(errs, fmt.Errorf("remove layer %s: %w", chainID, err))
			os.Remove(trash)
			continue
		}
		if err := os.RemoveAll(trash); err != nil {
			// Gone from layers/ already; New retries on the next start.
			s.log.Warn("deleting removed layer dir", "chainID", chainID, "err", err)
		}
		removedLayers++
	}
	blobs, err := os.ReadDir(s.blobDir())
	if err != nil {
		return fmt.Errorf("list blobs: %w", err)
	}
	for _, e := range blobs {
		d := "sha256:" + e.Name()
		if keepBlobs[d] {
			continue
		}
		if err := os.Remove(filepath.Join(s.blobDir(), e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove blob %s: %w", d, err))
			continue
		}
		removedBlobs++
	}
	if removedLayers+removedBlobs > 0 {
		s.log.Info("image garbage collected", "layers", removedLayers, "blobs", removedBlobs)
		s.kickUsage()
	}
	return errors.Join(errs...)
}
