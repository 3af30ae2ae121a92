package stats

import (
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Disk is the usage of a writable layer.
type Disk struct {
	At     time.Time // when the walk that measured it ended
	Bytes  uint64    // allocated bytes (blocks, as du counts them)
	Inodes uint64
}

// diskCache measures directories in the background, one at a time, so a
// stats call never walks a file tree: it answers with the last measurement.
// A directory is measured soon after it is first asked for, then every
// interval while it keeps being asked for; one not asked for during three
// intervals is forgotten (its container is gone or nobody watches it).
type diskCache struct {
	interval time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	entries map[string]*diskEntry // by directory
	kick    chan struct{}
	started bool
	ctx     context.Context
	stop    context.CancelFunc
	done    chan struct{}
}

type diskEntry struct {
	usage    Disk
	measured bool
	wanted   time.Time
}

func newDiskCache(interval time.Duration, log *slog.Logger) *diskCache {
	if log == nil {
		log = slog.Default()
	}
	ctx, stop := context.WithCancel(context.Background())
	return &diskCache{
		interval: interval, log: log, entries: map[string]*diskEntry{},
		kick: make(chan struct{}, 1), ctx: ctx, stop: stop, done: make(chan struct{}),
	}
}

// get returns the last measurement of dir; ok is false until the first
// walk of dir has finished. The refresher starts on first use, so a daemon
// nobody asks for stats runs no walker.
func (d *diskCache) get(dir string) (Disk, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.started {
		d.started = true
		go d.run()
	}
	e, ok := d.entries[dir]
	if !ok {
		e = &diskEntry{}
		d.entries[dir] = e
		select {
		case d.kick <- struct{}{}:
		default:
		}
	}
	e.wanted = time.Now()
	return e.usage, e.measured
}

// await returns once each of dirs has been measured (or dropped, being
// gone), or after timeout.
func (d *diskCache) await(dirs []string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		done := true
		d.mu.Lock()
		for _, dir := range dirs {
			if e, ok := d.entries[dir]; ok && !e.measured {
				done = false
				break
			}
		}
		d.mu.Unlock()
		if done || time.Now().After(deadline) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (d *diskCache) close() {
	d.stop()
	d.mu.Lock()
	started := d.started
	d.mu.Unlock()
	if started {
		<-d.done
	}
}

func (d *diskCache) run() {
	defer close(d.done)
	t := time.NewTicker(d.interval)
	defer t.Stop()
	for {
		// A kick measures only what was never measured; the tick refreshes all.
		all := false
		select {
		case <-d.ctx.Done():
			return
		case <-d.kick:
		case <-t.C:
			all = true
		}
		d.refresh(all)
	}
}

func (d *diskCache) refresh(all bool) {
	now := time.Now()
	var dirs []string
	d.mu.Lock()
	for dir, e := range d.entries {
		if now.Sub(e.wanted) > 3*d.interval {
			delete(d.entries, dir)
			continue
		}
		if all || !e.measured {
			dirs = append(dirs, dir)
		}
	}
	d.mu.Unlock()
	for _, dir := range dirs {
		if d.ctx.Err() != nil {
			return
		}
		u, err := walkUsage(d.ctx, dir)
		if err != nil {
			if !os.IsNotExist(err) {
				d.log.Debug("measuring writable layer", "dir", dir, "err", err)
			}
			d.mu.Lock()
			delete(d.entries, dir)
			d.mu.Unlock()
			continue
		}
		d.mu.Lock()
		if e, ok := d.entries[dir]; ok {
			e.usage, e.measured = u, true
		}
		d.mu.Unlock()
	}
}

// walkUsage adds up the blocks and inodes below dir, counting hard-linked
// files once.
func walkUsage(ctx context.Context, dir string) (Disk, error) {
	if _, err := os.Lstat(dir); err != nil {
		return Disk{}, err
	}
	var u Disk
	seen := map[uint64]bool{}
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // removed while walking
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		info, err := e.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if st.Nlink > 1 && !e.IsDir() {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		u.Inodes++
		u.Bytes += uint64(st.Blocks) * 512
		return nil
	})
	u.At = time.Now()
	return u, err
}
