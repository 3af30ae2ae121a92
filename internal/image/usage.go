package image

import (
	"io/fs"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// usageRefresh is how often the disk usage walk runs without a change.
const usageRefresh = time.Minute

type usageCache struct {
	mu     sync.Mutex
	bytes  uint64
	inodes uint64
	kick   chan struct{}
}

func (u *usageCache) init() { u.kick = make(chan struct{}, 1) }

// FsInfo returns the disk bytes and inodes that the image store (blobs and
// layer dirs) uses, and the dir they live in. kubelet asks every few
// seconds, so this returns a cached figure that a background walk refreshes
// every minute and soon after each import and removal.
func (s *Service) FsInfo() (usedBytes, inodes uint64, mountpoint string) {
	s.usage.mu.Lock()
	defer s.usage.mu.Unlock()
	return s.usage.bytes, s.usage.inodes, s.root
}

// kickUsage asks the background loop for a fresh walk; it never blocks.
func (s *Service) kickUsage() {
	select {
	case s.usage.kick <- struct{}{}:
	default:
	}
}

func (s *Service) usageLoop() {
	defer close(s.loopStopped)
	t := time.NewTicker(usageRefresh)
	defer t.Stop()
	for {
		s.updateUsage()
		select {
		case <-s.closing:
			return
		case <-t.C:
		case <-s.usage.kick:
		}
	}
}

// updateUsage walks content/ and layers/ and stores the totals: allocated
// blocks (what du counts) and distinct inodes, hard links counted once.
func (s *Service) updateUsage() {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	var bytes, inodes uint64
	for _, dir := range []string{filepath.Join(s.root, "content"), s.layersDir()} {
		// Errors are files vanishing under a concurrent GC: skip them.
		_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return nil
			}
			st, ok := fi.Sys().(*syscall.Stat_t)
			if !ok {
				return nil
			}
			if st.Nlink > 1 && !d.IsDir() {
				k := inode{uint64(st.Dev), st.Ino}
				if seen[k] {
					return nil
				}
				seen[k] = true
			}
			bytes += uint64(st.Blocks) * 512
			inodes++
			return nil
		})
	}
	s.usage.mu.Lock()
	s.usage.bytes, s.usage.inodes = bytes, inodes
	s.usage.mu.Unlock()
}
