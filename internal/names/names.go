// Package names reserves pod and container names the way kubelet relies on,
// and makes creates retry-safe.
//
// kubelet gives up on a slow RunPodSandbox or CreateContainer after its
// request deadline and retries with the same metadata. Instead of answering
// that retry with "name is reserved" forever (containerd's failure mode), a
// create whose result was never delivered is handed to the retry: it waits
// for an in-flight create and takes its result. Results nobody collects are
// cleaned up after a TTL.
package names

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/berth-project/berth/internal/errdefs"
)

// Registry holds name reservations. The zero value is not usable; use New.
type Registry struct {
	kind string // "pod" or "container", for messages
	mu   sync.Mutex
	m    map[string]*entry
}

type entry struct {
	done      chan struct{} // closed when the create finished
	id        string
	err       error
	delivered bool
	// uncertain: delivered with so little of the caller's deadline left
	// that the reply may have missed it; a retry still gets the object.
	uncertain bool
	finished  time.Time
	cleanup   func(ctx context.Context, id string)
}

// New returns an empty registry for objects of the given kind.
func New(kind string) *Registry {
	return &Registry{kind: kind, m: make(map[string]*entry)}
}

// Ticket is the right to create the object behind a reserved name.
type Ticket struct {
	r   *Registry
	key string
	e   *entry
}

// Acquire reserves key for a new create. If another create of key is in
// flight it waits for it; if that create finished but its result was never
// delivered (or only uncertainly, see Done), Acquire returns its id with
// handedOver set (the caller answers
// the retry with it). If the name is taken by a delivered object it fails
// with AlreadyExists.
func (r *Registry) Acquire(ctx context.Context, key string) (t *Ticket, handedOver string, err error) {
	for {
		r.mu.Lock()
		e, ok := r.m[key]
		if !ok {
			e = &entry{done: make(chan struct{})}
			r.m[key] = e
			r.mu.Unlock()
			return &Ticket{r: r, key: key, e: e}, "", nil
		}
		select {
		case <-e.done:
			if e.err != nil {
				// A failed create releases its name itself; we raced with it.
				r.mu.Unlock()
				continue
			}
			if !e.delivered || e.uncertain {
				e.delivered, e.uncertain = true, false
				r.mu.Unlock()
				return nil, e.id, nil
			}
			r.mu.Unlock()
			return nil, "", errdefs.Exists(fmt.Sprintf("%s name %q is reserved for %s %s; remove it first", r.kind, key, r.kind, e.id))
		default:
		}
		r.mu.Unlock()
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, "", fmt.Errorf("%s %q is still being created by an earlier request; retry: %w", r.kind, key, errdefs.ErrUnavailable)
		}
	}
}

// deliveryMargin: a create that finished with less than this left of its
// caller's deadline may have missed it while its reply was on the way
// (the client then sees DeadlineExceeded and retries).
const deliveryMargin = 100 * time.Millisecond

// Done records the result of the create made on ctx, the caller's request
// context: delivered when ctx is not done, so the caller can still hand
// the result to its client. One finished within deliveryMargin of ctx's
// deadline is delivered but uncertain: a retry still gets it, and it is
// never cleaned up. A failed create releases the name. cleanup removes an
// undelivered object that no retry collected before the TTL.
func (t *Ticket) Done(ctx context.Context, id string, err error, cleanup func(ctx context.Context, id string)) {
	delivered := ctx.Err() == nil
	uncertain := false
	if d, ok := ctx.Deadline(); ok && delivered && time.Until(d) < deliveryMargin {
		uncertain = true
	}
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	t.e.id, t.e.err, t.e.delivered, t.e.uncertain, t.e.cleanup = id, err, delivered, uncertain, cleanup
	t.e.finished = time.Now()
	if err != nil && t.r.m[t.key] == t.e {
		delete(t.r.m, t.key)
	}
	close(t.e.done)
}

// Restore marks key as reserved by an existing object (records loaded at
// start). Restored objects count as delivered: after a crash nothing tells
// whether the create's answer reached the client, so a retry with the same
// metadata gets AlreadyExists. kubelet copes, as the crash churn test
// checks: it relists (pods by uid, containers by pod) before it creates and
// uses the object with its metadata.
func (r *Registry) Restore(key, id string) {
	e := &entry{done: make(chan struct{}), id: id, delivered: true, finished: time.Now()}
	close(e.done)
	r.mu.Lock()
	r.m[key] = e
	r.mu.Unlock()
}

// Release frees key if it is held by id.
func (r *Registry) Release(key, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.m[key]; ok && e.id == id {
		delete(r.m, key)
	}
}

// Expire runs cleanup for every finished, undelivered result older than ttl
// and frees its name. It returns the number cleaned.
func (r *Registry) Expire(ctx context.Context, ttl time.Duration) int {
	now := time.Now()
	var stale []*entry
	r.mu.Lock()
	for k, e := range r.m {
		select {
		case <-e.done:
		default:
			continue
		}
		if e.err == nil && !e.delivered && now.Sub(e.finished) > ttl {
			stale = append(stale, e)
			delete(r.m, k)
		}
	}
	r.mu.Unlock()
	for _, e := range stale {
		if e.cleanup != nil {
			e.cleanup(ctx, e.id)
		}
	}
	return len(stale)
}

// NewID returns a random 64-hex-digit object id, the form kubelet and
// crictl are used to from other runtimes.
func NewID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}
