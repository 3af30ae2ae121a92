package main

import (
	"math"
	"testing"
	"time"
)

func durations(msecs ...int) []time.Duration {
	var out []time.Duration
	for _, m := range msecs {
		out = append(out, time.Duration(m)*time.Millisecond)
	}
	return out
}

func TestPercentileNearestRank(t *testing.T) {
	// 1..100 ms: the p-th percentile is p ms exactly.
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	for _, p := range []float64{1, 50, 95, 99, 100} {
		if got, want := Percentile(s, p), time.Duration(p)*time.Millisecond; got != want {
			t.Errorf("p%v of 1..100 = %v, want %v", p, got, want)
		}
	}
	cases := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one sample is every percentile", durations(7), 99, 7 * time.Millisecond},
		{"median of two is the lower", durations(1, 2), 50, time.Millisecond},
		{"median of odd count is the middle", durations(1, 2, 3), 50, 2 * time.Millisecond},
		// ceil(0.99*30) = 30: with 30 samples p99 is the maximum.
		{"p99 of 30 is the max", durations(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30), 99, 30 * time.Millisecond},
		// ceil(0.95*20) = 19.
		{"p95 of 20", durations(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20), 95, 19 * time.Millisecond},
		{"p0 clamps to the min", durations(4, 5), 0, 4 * time.Millisecond},
	}
	for _, c := range cases {
		if got := Percentile(c.sorted, c.p); got != c.want {
			t.Errorf("%s: Percentile(%v, %v) = %v, want %v", c.name, c.sorted, c.p, got, c.want)
		}
	}
}

func TestSummarizeUnsortedInput(t *testing.T) {
	in := durations(30, 10, 20, 40)
	s := Summarize(in)
	want := Summary{N: 4, P50: 20, P95: 40, P99: 40, Min: 10, Max: 40, Mean: 25}
	if s != want {
		t.Errorf("Summarize(%v) = %+v, want %+v", in, s, want)
	}
	if in[0] != 30*time.Millisecond {
		t.Error("Summarize reordered its input")
	}
	if (Summarize(nil) != Summary{}) {
		t.Error("Summarize(nil) is not the zero Summary")
	}
}

func TestRatio(t *testing.T) {
	if got := Ratio(30, 100); math.Abs(got-0.3) > 1e-9 {
		t.Errorf("Ratio(30, 100) = %v", got)
	}
	if !math.IsNaN(Ratio(1, 0)) || !math.IsNaN(Ratio(0, 1)) {
		t.Error("Ratio with a missing side is not NaN")
	}
}

func TestRecorderMerge(t *testing.T) {
	a, b := newRecorder(), newRecorder()
	a.add("x", time.Millisecond)
	b.add("x", 3*time.Millisecond)
	b.add("y", 2*time.Millisecond)
	a.merge(b)
	res := a.results()
	if len(res) != 2 || res[0].Step != "x" || res[0].N != 2 || res[1].Step != "y" || res[1].N != 1 {
		t.Errorf("merged results %+v", res)
	}
}

func TestIdleFraction(t *testing.T) {
	for _, c := range []struct {
		t0, i0, t1, i1 uint64
		want           float64
	}{
		{100, 50, 200, 140, 0.9},
		{100, 50, 200, 50, 0},
		{100, 50, 100, 50, 1}, // no time passed: nothing ran
	} {
		if got := idleFraction(c.t0, c.i0, c.t1, c.i1); got != c.want {
			t.Errorf("idleFraction(%d, %d, %d, %d) = %v, want %v", c.t0, c.i0, c.t1, c.i1, got, c.want)
		}
	}
	if total, idle, err := cpuTimes(); err != nil || total == 0 || idle > total {
		t.Errorf("cpuTimes() = %d, %d, %v", total, idle, err)
	}
}
