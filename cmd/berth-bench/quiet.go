package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// Before each target's workload the bench waits for the machine to be
// quiet, so that no target is measured while another one's daemon still
// works off the previous workload in the background (containerd's
// garbage collection after 30 pod removals took 15 ms off berth's next
// pod starts in runs without this wait).
const (
	quietIdle   = 0.85                   // fraction of CPU time idle over one sample
	quietSample = 300 * time.Millisecond // sample length
	quietMax    = 15 * time.Second       // give up waiting after this
)

// cpuTimes reads the host's total and idle CPU time (all CPUs, in ticks)
// from /proc/stat.
func cpuTimes() (total, idle uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, errors.New("/proc/stat: no cpu line")
	}
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, err
		}
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return total, idle, nil
}

// idleFraction is the share of CPU time idle between two readings.
func idleFraction(t0, i0, t1, i1 uint64) float64 {
	if t1 <= t0 {
		return 1
	}
	return float64(i1-i0) / float64(t1-t0)
}

// waitQuiet returns once the CPUs were at least quietIdle idle over one
// sample, or after quietMax (it then says so in the log).
func waitQuiet(ctx context.Context, what string) {
	start := time.Now()
	t0, i0, err := cpuTimes()
	if err != nil {
		return
	}
	for time.Since(start) < quietMax {
		sleep(ctx, quietSample)
		if ctx.Err() != nil {
			return
		}
		t1, i1, err := cpuTimes()
		if err != nil {
			return
		}
		if idleFraction(t0, i0, t1, i1) >= quietIdle {
			return
		}
		t0, i0 = t1, i1
	}
	slog.Warn("machine still busy; measuring anyway", "before", what, "waited", quietMax)
}
