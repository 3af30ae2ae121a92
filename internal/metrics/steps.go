package metrics

import (
	"context"
	"log/slog"
	"time"
)

// Steps times the steps of one operation (a RunPodSandbox, a
// CreateContainer) for the step histogram and one debug log line, so that
// a bench or an operator can see where a call's time goes. Callers mark
// the end of each step; a step's time runs from the previous mark. Not
// safe for concurrent use: one operation, one goroutine.
type Steps struct {
	op    string
	start time.Time
	last  time.Time
	took  []slog.Attr
}

// StartSteps begins timing op (a CRI method name).
func StartSteps(op string) *Steps {
	now := time.Now()
	return &Steps{op: op, start: now, last: now, took: make([]slog.Attr, 0, 8)}
}

// Done ends step, records it and starts the next one. A nil Steps does
// nothing, so optional call sites need no check.
func (s *Steps) Done(step string) {
	if s == nil {
		return
	}
	now := time.Now()
	d := now.Sub(s.last)
	s.last = now
	s.took = append(s.took, slog.Duration(step, d))
	if m := active.Load(); m != nil {
		m.stepTook.WithLabelValues(s.op, step).Observe(d.Seconds())
	}
}

// Log writes one debug line with every step's time and the total, when
// log's debug level is on.
func (s *Steps) Log(ctx context.Context, log *slog.Logger, msg string, attrs ...slog.Attr) {
	if s == nil || !log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs = append(attrs, slog.Duration("took", time.Since(s.start)), slog.Attr{Key: "steps", Value: slog.GroupValue(s.took...)})
	log.LogAttrs(ctx, slog.LevelDebug, msg, attrs...)
}
