package main

import (
	"sync"
	"time"
)

// recorder collects latencies per step, in the order steps first appear.
type recorder struct {
	mu    sync.Mutex
	order []string
	ds    map[string][]time.Duration
}

func newRecorder() *recorder { return &recorder{ds: map[string][]time.Duration{}} }

func (r *recorder) add(step string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.ds[step]; !ok {
		r.order = append(r.order, step)
	}
	r.ds[step] = append(r.ds[step], d)
}

// time runs f and records its duration under step when it succeeds.
func (r *recorder) time(step string, f func() error) error {
	t0 := time.Now()
	if err := f(); err != nil {
		return err
	}
	r.add(step, time.Since(t0))
	return nil
}

// StepResult is one step's summary, for the report.
type StepResult struct {
	Step string `json:"step"`
	Summary
}

func (r *recorder) results() []StepResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]StepResult, 0, len(r.order))
	for _, s := range r.order {
		out = append(out, StepResult{Step: s, Summary: Summarize(r.ds[s])})
	}
	return out
}

// merge adds every duration other recorded to r.
func (r *recorder) merge(other *recorder) {
	other.mu.Lock()
	order, ds := other.order, other.ds
	other.mu.Unlock()
	for _, s := range order {
		for _, d := range ds[s] {
			r.add(s, d)
		}
	}
}
