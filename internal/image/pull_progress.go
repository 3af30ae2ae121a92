package image

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-project/berth/internal/errdefs"
)

// LayerState is where one layer of a pull is.
type LayerState string

const (
	layerWaiting     LayerState = "waiting"     // queued behind the download limit
	layerShared      LayerState = "shared"      // another pull fetches (or fetched) this blob
	layerDownloading LayerState = "downloading" // being fetched and unpacked
	layerDone        LayerState = "done"        // fetched, verified and unpacked
	layerPresent     LayerState = "present"     // was already in the store
	layerFailed      LayerState = "failed"
)

// LayerProgress is one layer's progress.
type LayerProgress struct {
	Digest string     `json:"digest"`
	Size   int64      `json:"size"`
	Bytes  int64      `json:"bytes"` // fetched so far
	State  LayerState `json:"state"`
}

// PullProgress is a snapshot of one pull.
type PullProgress struct {
	Ref      string          `json:"ref"`
	Endpoint string          `json:"endpoint,omitempty"`
	Started  time.Time       `json:"started"`
	Layers   []LayerProgress `json:"layers"`
}

// Active returns the progress of the pulls running now.
func (p *Puller) Active() []PullProgress {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]PullProgress, 0, len(p.active))
	for ps := range p.active {
		out = append(out, ps.snapshot())
	}
	return out
}

// pullState tracks one pull: activity for the progress timeout, and
// per-layer byte counts for progress reports.
type pullState struct {
	ref     string
	started time.Time
	last    atomic.Int64 // unix nanos of the last byte or response
	notify  func(PullProgress)
	log     *slog.Logger

	mu         sync.Mutex
	endpoint   string
	layers     []LayerProgress
	byDigest   map[string]int
	lastNotify time.Time
	lastLog    time.Time
}

func newPullState(ref string, notify func(PullProgress), log *slog.Logger) *pullState {
	ps := &pullState{ref: ref, started: time.Now(), notify: notify, log: log, byDigest: map[string]int{}}
	ps.touch()
	return ps
}

func (ps *pullState) touch() { ps.last.Store(time.Now().UnixNano()) }

func (ps *pullState) idle() time.Duration {
	return time.Since(time.Unix(0, ps.last.Load()))
}

// watch cancels ctx with a progress-timeout error once nothing arrived for
// timeout. The returned func stops watching.
func (ps *pullState) watch(ctx context.Context, cancel context.CancelCauseFunc, timeout time.Duration) func() {
	if timeout <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	tick := min(max(timeout/4, 50*time.Millisecond), time.Second)
	go func() {
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if idle := ps.idle(); idle >= timeout {
					cancel(fmt.Errorf("pull of %s made no progress for %s (images.pull_progress_timeout): the registry or the network stalled: %w",
						ps.ref, idle.Round(time.Millisecond), errdefs.ErrDeadlineExceeded))
					return
				}
			}
		}
	}()
	return func() { close(done) }
}

func (ps *pullState) setEndpoint(ep string) {
	ps.mu.Lock()
	ps.endpoint = ep
	ps.mu.Unlock()
}

func (ps *pullState) addLayer(digest string, size int64) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if _, ok := ps.byDigest[digest]; ok {
		return // the same blob twice in one image
	}
	ps.byDigest[digest] = len(ps.layers)
	ps.layers = append(ps.layers, LayerProgress{Digest: digest, Size: size, State: layerWaiting})
}

// setLayer changes a layer's state; bytes < 0 keeps its count.
func (ps *pullState) setLayer(digest string, st LayerState, bytes int64) {
	ps.mu.Lock()
	i, ok := ps.byDigest[digest]
	if ok {
		ps.layers[i].State = st
		if bytes >= 0 {
			ps.layers[i].Bytes = bytes
		}
	}
	ps.mu.Unlock()
	ps.notifyNow()
}

func (ps *pullState) addBytes(digest string, n int64) {
	ps.touch()
	ps.mu.Lock()
	if i, ok := ps.byDigest[digest]; ok {
		ps.layers[i].Bytes += n
	}
	now := time.Now()
	due := ps.notify != nil && now.Sub(ps.lastNotify) >= 200*time.Millisecond
	logDue := now.Sub(ps.lastLog) >= 5*time.Second
	if due {
		ps.lastNotify = now
	}
	if logDue {
		ps.lastLog = now
	}
	ps.mu.Unlock()
	if due {
		ps.notify(ps.snapshot())
	}
	if logDue {
		ps.logProgress()
	}
}

func (ps *pullState) layerState(digest string) LayerState {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if i, ok := ps.byDigest[digest]; ok {
		return ps.layers[i].State
	}
	return ""
}

func (ps *pullState) layerBytes(digest string) int64 {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if i, ok := ps.byDigest[digest]; ok {
		return ps.layers[i].Bytes
	}
	return 0
}

func (ps *pullState) fetchedBytes() int64 {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var n int64
	for _, l := range ps.layers {
		if l.State != layerShared && l.State != layerPresent {
			n += l.Bytes
		}
	}
	return n
}

func (ps *pullState) notifyNow() {
	if ps.notify == nil {
		return
	}
	ps.mu.Lock()
	ps.lastNotify = time.Now()
	ps.mu.Unlock()
	ps.notify(ps.snapshot())
}

func (ps *pullState) snapshot() PullProgress {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := PullProgress{Ref: ps.ref, Endpoint: ps.endpoint, Started: ps.started, Layers: make([]LayerProgress, len(ps.layers))}
	copy(out.Layers, ps.layers)
	return out
}

// logProgress writes a debug line with every layer's byte count.
func (ps *pullState) logProgress() {
	snap := ps.snapshot()
	attrs := []any{"ref", snap.Ref, "endpoint", snap.Endpoint}
	for _, l := range snap.Layers {
		attrs = append(attrs, l.Digest, fmt.Sprintf("%s %d/%d", l.State, l.Bytes, l.Size))
	}
	ps.log.Debug("pull progress", attrs...)
}

// flightGroup hands out one lock per blob digest, so that concurrent pulls
// fetch each blob once: the first holder downloads, the others wait (their
// progress timers fed by the holder's bytes) and then find it present.
type flightGroup struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct {
	sem     chan struct{}
	refs    int
	fetched atomic.Int64
}

func (f *flight) add(n int64) {
	if f != nil {
		f.fetched.Add(n)
	}
}

// get returns the flight of key while someone holds or waits for it.
func (g *flightGroup) get(key string) *flight {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.m[key]
}

// acquire takes key's lock, giving up when ctx ends. While waiting, the
// holder's download counts as ps's progress; layer names ps's layer to
// show as shared ("" for none).
func (g *flightGroup) acquire(ctx context.Context, key string, ps *pullState, layer string) (func(), error) {
	g.mu.Lock()
	f := g.m[key]
	if f == nil {
		f = &flight{sem: make(chan struct{}, 1)}
		g.m[key] = f
	}
	f.refs++
	g.mu.Unlock()
	unref := func() {
		g.mu.Lock()
		if f.refs--; f.refs == 0 {
			delete(g.m, key)
		}
		g.mu.Unlock()
	}
	select {
	case f.sem <- struct{}{}:
		return func() { <-f.sem; unref() }, nil
	default:
	}
	if layer != "" {
		ps.setLayer(layer, layerShared, -1)
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	seen := f.fetched.Load()
	for {
		select {
		case f.sem <- struct{}{}:
			return func() { <-f.sem; unref() }, nil
		case <-ctx.Done():
			unref()
			return nil, ctx.Err()
		case <-t.C:
			if n := f.fetched.Load(); n != seen {
				if layer != "" {
					ps.mu.Lock()
					if i, ok := ps.byDigest[layer]; ok {
						ps.layers[i].Bytes = n
					}
					ps.mu.Unlock()
				}
				seen = n
				ps.touch()
			}
		}
	}
}
