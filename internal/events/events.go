// Package events carries container lifecycle events from the runtime to
// whoever watches them (kubelet's Evented PLEG through GetContainerEvents,
// `berth events`). Publishing never blocks: every subscriber has a bounded
// buffer, and a subscriber that lets it fill up is dropped, so one slow
// client cannot stall container starts and exits.
package events

import (
	"sync"
	"time"
)

// Kind is what happened to a container.
type Kind int

const (
	ContainerCreated Kind = iota
	ContainerStarted
	ContainerStopped
	ContainerDeleted
)

func (k Kind) String() string {
	switch k {
	case ContainerCreated:
		return "created"
	case ContainerStarted:
		return "started"
	case ContainerStopped:
		return "stopped"
	case ContainerDeleted:
		return "deleted"
	}
	return "unknown"
}

// Event is one lifecycle event.
type Event struct {
	Kind        Kind
	ContainerID string
	PodID       string
	At          time.Time
	// Object is the container record as it was right after the change (an
	// immutable copy-on-write value), so a late reader still reports the
	// state the event is about.
	Object any
}

// DefaultBuffer is a subscriber's buffer when Subscribe is given none:
// enough for a burst of a few hundred pods starting at once.
const DefaultBuffer = 1024

// Bus fans events out to subscribers. The zero value is not usable; a nil
// *Bus accepts and drops everything, so publishers need no checks.
type Bus struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	live   bool
	closed bool
	boot   []Event // events published before MarkLive: replayed to new subscribers
	bootAt time.Time
	keep   time.Duration
	now    func() time.Time
}

// maxBoot bounds the startup backlog (one event per container reconciled).
const maxBoot = 4096

// NewBus returns a bus. Events published before MarkLive (the exits found
// while reconciling at start, when nobody can be subscribed yet) are kept
// for keep after MarkLive and replayed to each new subscriber first, so a
// client that reconnects after a restart still learns of them.
func NewBus(keep time.Duration) *Bus {
	return &Bus{subs: map[*Subscription]struct{}{}, keep: keep, now: time.Now}
}

// MarkLive ends the startup phase: later events go to subscribers only.
func (b *Bus) MarkLive() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.live = true
	b.bootAt = b.now()
	b.mu.Unlock()
}

// Publish hands ev to every subscriber without blocking. A subscriber whose
// buffer is full is closed with ErrSlow: it has missed an event, and a
// consumer that silently misses events is worse than one that reconnects
// and relists.
func (b *Bus) Publish(ev Event) {
	if b == nil {
		return
	}
	if ev.At.IsZero() {
		ev.At = b.now()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.live && len(b.boot) < maxBoot {
		b.boot = append(b.boot, ev)
	}
	for s := range b.subs {
		select {
		case s.ch <- ev:
		default:
			s.dropped = true
			b.remove(s)
		}
	}
}

// Subscription is one subscriber's stream of events.
type Subscription struct {
	bus     *Bus
	ch      chan Event
	dropped bool
}

// Subscribe registers a subscriber with a buffer of size events
// (DefaultBuffer when size <= 0). It first receives the startup backlog,
// while that is kept.
func (b *Bus) Subscribe(size int) *Subscription {
	if size <= 0 {
		size = DefaultBuffer
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var backlog []Event
	if !b.live || b.now().Sub(b.bootAt) < b.keep {
		backlog = b.boot
	} else {
		b.boot = nil // expired: free it
	}
	s := &Subscription{bus: b, ch: make(chan Event, max(size, len(backlog)))}
	for _, ev := range backlog {
		s.ch <- ev
	}
	if b.closed {
		close(s.ch)
		return s
	}
	b.subs[s] = struct{}{}
	return s
}

// Close ends every subscription (berthd is shutting down) and refuses new
// ones: their streams end instead of holding up a graceful stop.
func (b *Bus) Close() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		b.remove(s)
	}
}

// Events is closed when the subscription ends: Close was called, or the
// subscriber fell behind (then Dropped reports true).
func (s *Subscription) Events() <-chan Event { return s.ch }

// Dropped says the bus ended this subscription because its buffer was full.
func (s *Subscription) Dropped() bool {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	return s.dropped
}

// Close ends the subscription; calling it twice is fine.
func (s *Subscription) Close() {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	s.bus.remove(s)
}

// remove unregisters s; b.mu is held.
func (b *Bus) remove(s *Subscription) {
	if _, ok := b.subs[s]; ok {
		delete(b.subs, s)
		close(s.ch)
	}
}

// Subscribers returns the number of current subscribers.
func (b *Bus) Subscribers() int {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}
