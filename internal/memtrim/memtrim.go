// Package memtrim gives memory back to the host once berthd's
// state-changing calls have stopped for a while: the end of a burst of pod
// starts or stops, a pull. Such a burst leaves the Go heap's freed spans
// (returned to the kernel only slowly by the runtime's scavenger) and
// the pages of code and tables it ran (with the kernel's 64 KiB
// fault-around, most of the binary's pclntab and text) mapped in berthd,
// counted in its RSS, until the process exits or memory pressure makes the
// kernel reclaim them.
//
// Once quiet, the pages a garbage collection faults back in are given back
// after each cycle too: a cycle reads the pclntab and type data of every
// frame on every goroutine's stack and of every type in the heap, and with
// fault-around that maps back 7-10 MiB of the binary (measured with 100
// pods) that would otherwise stay until the next burst. That costs a
// minor fault per 64 KiB on the next cycle (about 2 ms), only at rest.
//
// Polled calls (List*, *Status, *Stats, Version, ImageFsInfo, ExecSync and
// the streaming URLs: see Polled) neither delay nor start a trim: kubelet
// makes them every second or so, and they keep no state. Two trims of
// either kind are at least DefaultMinGap apart. A trim never runs while a state-changing call is in flight, so it
// does not slow the call that it would otherwise land in; the first call
// after it refaults the code it runs from the page cache (a minor fault per
// 64 KiB, about 13 µs on the VMs measured: some milliseconds for a pod
// start's code).
package memtrim

import (
	"context"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
)

// Trimmer runs its trim once state-changing calls have been quiet for its
// delay after the last one ended, and its idle trim after every garbage
// collection while they stay quiet.
type Trimmer struct {
	after time.Duration
	trim  func()
	idle  func()
	gc    chan struct{} // a collection cycle ended
	// minGap is the least time between two trims of either kind, so that
	// calls spaced just over after apart, or a client whose polls drive
	// collections, cannot make trimming (and refaulting) a steady cost.
	minGap time.Duration
	// base is the monotonic origin of last and trimmed: a wall clock
	// stepped back (NTP on a fresh VM) must not stall or hurry trims.
	base time.Time

	busy    atomic.Int32 // state-changing calls in flight
	last    atomic.Int64 // when the last one ended, ns since base
	trimmed time.Duration
	kick    chan struct{}
}

// DefaultMinGap is the least time between two trims.
const DefaultMinGap = 10 * time.Second

// since returns the monotonic time since base.
func (t *Trimmer) since() time.Duration { return time.Since(t.base) }

// New returns a trimmer that calls trim once calls have been quiet for
// after, and idle (which must not collect garbage itself) after each
// collection while they stay quiet. after <= 0: never.
func New(after time.Duration, trim, idle func()) *Trimmer {
	return &Trimmer{after: after, trim: trim, idle: idle, minGap: DefaultMinGap, base: time.Now(),
		trimmed: -DefaultMinGap, kick: make(chan struct{}, 1), gc: make(chan struct{}, 1)}
}

// Begin counts a state-changing call in flight; end (exactly once) ends it.
func (t *Trimmer) Begin() (end func()) {
	t.busy.Add(1)
	return func() {
		t.last.Store(int64(t.since()))
		t.busy.Add(-1)
		select {
		case t.kick <- struct{}{}:
		default: // already due
		}
	}
}

// Run trims after each quiet spell that follows a call, until ctx ends. It
// sleeps while nothing happens: no ticker.
func (t *Trimmer) Run(ctx context.Context) {
	if t.after <= 0 {
		return
	}
	var stop atomic.Bool
	defer stop.Store(true)
	t.watchGC(&stop)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.gc:
			now := t.since()
			if t.busy.Load() == 0 && now-time.Duration(t.last.Load()) >= t.after && now-t.trimmed >= t.minGap {
				t.idle()
				t.trimmed = t.since()
			}
			continue
		case <-t.kick:
		}
		if !t.waitQuiet(ctx) {
			return
		}
		t.trim()
		t.trimmed = t.since()
	}
}

// gcSentinel has a pointer so that it is not batched with other tiny
// objects: it dies in the first collection after it is made.
type gcSentinel struct{ _ *int }

// watchGC signals t.gc after each collection cycle until stop: a sentinel's
// cleanup runs once a cycle has found it unreachable, and makes the next.
func (t *Trimmer) watchGC(stop *atomic.Bool) {
	runtime.AddCleanup(new(gcSentinel), func(stop *atomic.Bool) {
		select {
		case t.gc <- struct{}{}:
		default:
		}
		if !stop.Load() {
			t.watchGC(stop)
		}
	}, stop)
}

// waitQuiet returns once no call is in flight, the last ended at least
// t.after ago and the last trim ran at least t.minGap ago; false when ctx
// ended first.
func (t *Trimmer) waitQuiet(ctx context.Context) bool {
	wait := t.after
	for {
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return false
		case <-timer.C:
		}
		// Kicks meanwhile are covered by last: drop them, or the next
		// round would trim again with nothing new to give back.
		select {
		case <-t.kick:
		default:
		}
		if t.busy.Load() > 0 {
			wait = t.after
			continue
		}
		now := t.since()
		quiet, gap := now-time.Duration(t.last.Load()), now-t.trimmed
		if quiet >= t.after && gap >= t.minGap {
			return true
		}
		wait = max(t.after-quiet, t.minGap-gap)
	}
}

// UnaryInterceptor counts every unary call but the polled ones.
func (t *Trimmer) UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if Polled(info.FullMethod) {
		return handler(ctx, req)
	}
	defer t.Begin()()
	return handler(ctx, req)
}

// Polled reports whether a gRPC method (/package.Service/Method) changes
// no state berthd keeps, as kubelet's periodic calls: reads, exec probes
// (ExecSync) and the streaming URLs (Exec, Attach, PortForward).
func Polled(fullMethod string) bool {
	m := fullMethod[strings.LastIndexByte(fullMethod, '/')+1:]
	return strings.HasPrefix(m, "List") || strings.HasSuffix(m, "Status") || strings.HasSuffix(m, "Stats") ||
		m == "Version" || m == "ImageFsInfo" || m == "ExecSync" || m == "Exec" || m == "Attach" || m == "PortForward"
}
