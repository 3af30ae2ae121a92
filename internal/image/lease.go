package image

import "sync"

// Lease holds an image's layers for a user that has resolved the image but
// has not yet recorded its own claim on the layers, such as a container
// create between resolving its image and publishing its record. While the
// lease is held, GC keeps the layers even if the image is removed. Release
// it once the user's claim is recorded (or it gave up); a nil Lease is a
// no-op.
type Lease struct {
	s    *Service
	keys []string
	once sync.Once
}

// LeaseImage resolves ref as Get does and leases the image's layer dirs, in
// one step under the GC lock: a RemoveImage whose GC runs after it keeps the
// layers until Release, and one whose GC ran before it has already made ref
// not found. Resolving with Get and leasing afterwards would leave a window
// in which GC deletes layers the caller is about to mount.
func (s *Service) LeaseImage(ref string) (*Image, *Lease, error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	img, err := s.Get(ref)
	if err != nil {
		return nil, nil, err
	}
	leaseResolved()
	l := &Lease{s: s, keys: make([]string, 0, len(img.ChainIDs))}
	for _, c := range img.ChainIDs {
		k := layerKey(c)
		s.leases[k]++
		l.keys = append(l.keys, k)
	}
	return img, l, nil
}

// leaseResolved is a pause point for tests, between resolving and leasing.
var leaseResolved = func() {}

// Release drops the lease; later calls do nothing. What only the lease kept
// is removed by the next GC (the next RemoveImage, or berthd's start).
func (l *Lease) Release() {
	if l == nil {
		return
	}
	l.once.Do(func() {
		l.s.gcMu.Lock()
		defer l.s.gcMu.Unlock()
		for _, k := range l.keys {
			if l.s.leases[k]--; l.s.leases[k] <= 0 {
				delete(l.s.leases, k)
			}
		}
	})
}
