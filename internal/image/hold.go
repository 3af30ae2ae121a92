package image

import (
	"fmt"
	"slices"
	"strings"

	"github.com/berth-project/berth/internal/errdefs"
)

// HoldImage resolves ref and marks the image as mounted by holder (a
// container's image volume), in one step under the store lock: Remove
// refuses a held image, so it cannot go while mounted. A holder may hold
// several images; Unhold drops them all.
func (s *Service) HoldImage(ref, holder string) (*Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	img, err := s.resolveLocked(ref)
	if err != nil {
		return nil, err
	}
	if s.holds == nil {
		s.holds = map[string]map[string]bool{}
	}
	if s.holds[img.ID] == nil {
		s.holds[img.ID] = map[string]bool{}
	}
	s.holds[img.ID][holder] = true
	c := img.clone()
	c.Pinned = c.Pinned || s.pinnedLocked()[c.ID]
	return c, nil
}

// Unhold drops every hold of holder; an unknown holder is fine.
func (s *Service) Unhold(holder string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, hs := range s.holds {
		delete(hs, holder)
		if len(hs) == 0 {
			delete(s.holds, id)
		}
	}
}

// heldLocked returns an error naming the holders when image id is held.
func (s *Service) heldLocked(id string) error {
	hs := s.holds[id]
	if len(hs) == 0 {
		return nil
	}
	names := make([]string, 0, len(hs))
	for h := range hs {
		names = append(names, h)
	}
	slices.Sort(names)
	return errdefs.Precondition(fmt.Sprintf("image %s is mounted as an image volume by container(s) %s: remove them first", id, strings.Join(names, ", ")))
}
