package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// stepSeries is berthd's per-step histogram (internal/metrics).
const stepSeries = "berth_cri_step_duration_seconds"

// ServerStep is the mean time of one step of a CRI call inside the
// runtime over one workload, from the runtime's own metrics.
type ServerStep struct {
	Workload string  `json:"workload"`
	Method   string  `json:"method"`
	Step     string  `json:"step"`
	N        int     `json:"n"`
	MeanMS   float64 `json:"mean_ms"`
}

// stepKey is one series of the step histogram.
type stepKey struct{ method, step string }

// stepTotals is a histogram's sum (seconds) and count per series.
type stepTotals map[stepKey]struct {
	sum   float64
	count int
}

// scrapeSteps reads the step histogram's sums and counts from url.
func scrapeSteps(ctx context.Context, url string) (stepTotals, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics %s: %s", url, resp.Status)
	}
	return parseSteps(resp.Body)
}

// parseSteps picks the step histogram's _sum and _count lines out of a
// Prometheus text page; a small parser for one known series is enough.
func parseSteps(r io.Reader) (stepTotals, error) {
	out := stepTotals{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, stepSeries+"_") {
			continue
		}
		name, rest, ok := strings.Cut(line, "{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		var k stepKey
		for _, kv := range strings.Split(labels, ",") {
			key, v, _ := strings.Cut(kv, "=")
			v = strings.Trim(v, `"`)
			switch key {
			case "method":
				k.method = v
			case "step":
				k.step = v
			}
		}
		x, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		t := out[k]
		switch strings.TrimPrefix(name, stepSeries) {
		case "_sum":
			t.sum = x
		case "_count":
			t.count = int(x)
		default:
			continue
		}
		out[k] = t
	}
	return out, sc.Err()
}

// stepMeans is the mean of each step over what happened between before
// and after, ordered by method, then as berthd runs the steps.
func stepMeans(workload string, before, after stepTotals) []ServerStep {
	var out []ServerStep
	for k, a := range after {
		b := before[k]
		n := a.count - b.count
		if n <= 0 {
			continue
		}
		out = append(out, ServerStep{Workload: workload, Method: k.method, Step: k.step, N: n, MeanMS: (a.sum - b.sum) * 1000 / float64(n)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Method != out[j].Method {
			return methodOrder(out[i].Method) < methodOrder(out[j].Method)
		}
		return stepOrder(out[i].Step) < stepOrder(out[j].Step)
	})
	return out
}

func methodOrder(m string) int {
	switch m {
	case "RunPodSandbox":
		return 0
	case "CreateContainer":
		return 1
	case "StartContainer":
		return 2
	}
	return 3
}

// stepOrder is where a step runs within its call (internal/sandbox,
// internal/container); unknown steps go last.
func stepOrder(s string) int {
	for i, name := range []string{"files", "namespaces", "pause", "network", "validate", "rootfs", "spec", "runtime_create", "runtime_start", "record"} {
		if s == name {
			return i
		}
	}
	return 100
}
