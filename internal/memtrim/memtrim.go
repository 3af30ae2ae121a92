// Package memtrim gives memory back to the host once berthd's
// state-changing calls have stopped for a while: the end of a burst of pod
// starts or stops, a pull. Such a burst leaves the Go heap's freed spans
// (returned to the kernel only slowly by the runtime's scavenger) and
// the pages of code and tables it ran (with the kernel's 64 KiB
// fault-around, most of the binary's pclntab and text) mapped in berthd,
// counted in its RSS, until the process exits.
//
// Polled calls (List*, *Status, *Stats, Version, ImageFsInfo) neither delay
// nor start a trim: kubelet makes them every second or so, and they touch
// little. A trim never runs while a state-changing call is in flight, so it
// does not slow the call that it would otherwise land in; the first call
// after it refaults the code it runs from the page cache (a minor fault per
// 64 KiB, about 13 µs on the VMs measured: some milliseconds for a pod
// start's code).
package memtrim

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
)

// Trimmer runs its trim once state-changing calls have been quiet for its
// delay after the last one ended.
type Trimmer struct {
	after time.Duration
	trim  func()
	now   func() time.Time

	busy atomic.Int32 // state-changing calls in flight
	last atomic.Int64 // when the last one ended, unix ns
	kick chan struct{}
}

// New returns a trimmer that calls trim once calls have been quiet for
// after. after <= 0: never.
func New(after time.Duration, trim func()) *Trimmer {
	return &Trimmer{after: after, trim: trim, now: time.Now, kick: make(chan struct{}, 1)}
}

// Begin counts a state-changing call in flight; end (exactly once) ends it.
func (t *Trimmer) Begin() (end func()) {
	t.busy.Add(1)
	return func() {
		t.last.Store(t.now().UnixNano())
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
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.kick:
		}
		if !t.waitQuiet(ctx) {
			return
		}
		t.trim()
	}
}

// waitQuiet returns once no call is in flight and the last ended at least
// t.after ago; false when ctx ended first.
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
		since := t.now().Sub(time.Unix(0, t.last.Load()))
		if since >= t.after {
			return true
		}
		wait = t.after - since
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

// Polled reports whether a gRPC method (/package.Service/Method) only reads
// state, as kubelet's periodic calls do.
func Polled(fullMethod string) bool {
	m := fullMethod[strings.LastIndexByte(fullMethod, '/')+1:]
	return strings.HasPrefix(m, "List") || strings.HasSuffix(m, "Status") || strings.HasSuffix(m, "Stats") ||
		m == "Version" || m == "ImageFsInfo"
}
