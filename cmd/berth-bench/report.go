package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// Report is one bench run: every target measured with the same workloads.
type Report struct {
	Date       string       `json:"date"`
	Host       string       `json:"host"`
	Kernel     string       `json:"kernel"`
	CPUs       int          `json:"cpus"`
	LoadBefore string       `json:"loadavg_before"`
	LoadAfter  string       `json:"loadavg_after"`
	Client     string       `json:"client"`
	Counts     Counts       `json:"counts"`
	Image      string       `json:"image"`
	PullImage  string       `json:"pull_image"`
	Runc       string       `json:"runc"`
	Floor      []StepResult `json:"floor,omitempty"`
	// FloorHalves are the floor's two halves (before and after the
	// sequential pods), each on its own.
	FloorHalves []StepResult    `json:"floor_halves,omitempty"`
	FloorError  string          `json:"floor_error,omitempty"`
	Targets     []*TargetResult `json:"targets"`
	Seconds     float64         `json:"seconds"`
}

func (r *Report) steps() []string {
	var order []string
	seen := map[string]bool{}
	for _, t := range r.Targets {
		for _, s := range t.Steps {
			if !seen[s.Step] {
				seen[s.Step] = true
				order = append(order, s.Step)
			}
		}
	}
	return order
}

func (t *TargetResult) step(name string) (Summary, bool) {
	for _, s := range t.Steps {
		if s.Step == name {
			return s.Summary, true
		}
	}
	return Summary{}, false
}

func ratio(x float64) string {
	if math.IsNaN(x) {
		return "-"
	}
	return fmt.Sprintf("%.2f×", x)
}

func mib(x float64) string { return fmt.Sprintf("%.1f MiB", x) }

// WriteTable prints the report for people: latencies per step and target
// (p50 / p95 / p99 in ms), then the first target's p50 over each other's.
func (r *Report) WriteTable(out io.Writer) {
	fmt.Fprintf(out, "berth-bench %s on %s (%d CPUs, kernel %s), load %s before, %s after, %.0f s\n",
		r.Date, r.Host, r.CPUs, r.Kernel, r.LoadBefore, r.LoadAfter, r.Seconds)
	fmt.Fprintf(out, "client: %s; image %s; pull %s; %s\n", r.Client, r.Image, r.PullImage, r.Runc)
	c := r.Counts
	fmt.Fprintf(out, "counts: %d sequential pods per shape, %d pods by %d clients, %d execs, %d of each list, %d pulls, %d floor runs\n\n",
		c.Pods, c.ConcurrentPods, c.Clients, c.Execs, c.Lists, c.Pulls, c.FloorRuns)
	for _, t := range r.Targets {
		fmt.Fprintf(out, "%s: %s at %s, pid %d\n", t.Name, t.Runtime, t.Endpoint, t.PID)
	}
	fmt.Fprintln(out)

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{"step (ms)"}
	for _, t := range r.Targets {
		head = append(head, t.Name+" p50", "p95", "p99", "n")
	}
	first := r.Targets[0]
	for _, t := range r.Targets[1:] {
		head = append(head, first.Name+"/"+t.Name)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, step := range r.steps() {
		row := []string{step}
		for _, t := range r.Targets {
			if s, ok := t.step(step); ok {
				row = append(row, fmt.Sprintf("%.1f", s.P50), fmt.Sprintf("%.1f", s.P95), fmt.Sprintf("%.1f", s.P99), fmt.Sprint(s.N))
			} else {
				row = append(row, "-", "-", "-", "-")
			}
		}
		a, _ := first.step(step)
		for _, t := range r.Targets[1:] {
			b, _ := t.step(step)
			row = append(row, ratio(Ratio(a.P50, b.P50)))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	tw.Flush()
	fmt.Fprintln(out)

	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	head = []string{""}
	for _, t := range r.Targets {
		head = append(head, t.Name)
	}
	for _, t := range r.Targets[1:] {
		head = append(head, first.Name+"/"+t.Name)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	row := func(label string, f func(*TargetResult) (float64, bool), format func(float64) string) {
		cells := []string{label}
		var vals []float64
		for _, t := range r.Targets {
			v, ok := f(t)
			if !ok {
				v = math.NaN()
				cells = append(cells, "-")
			} else {
				cells = append(cells, format(v))
			}
			vals = append(vals, v)
		}
		for i := 1; i < len(vals); i++ {
			cells = append(cells, ratio(Ratio(vals[0], vals[i])))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	perSec := func(x float64) string { return fmt.Sprintf("%.1f pods/s", x) }
	row("start throughput", func(t *TargetResult) (float64, bool) {
		return t.Throughput.startRate(), t.Throughput != nil
	}, perSec)
	row("stop+remove throughput", func(t *TargetResult) (float64, bool) {
		return t.Throughput.stopRate(), t.Throughput != nil && t.Throughput.StopSeconds > 0
	}, perSec)
	mem := func(label string, get func(*TargetResult) *Memory, field func(Memory) float64) {
		row(label, func(t *TargetResult) (float64, bool) {
			m := get(t)
			if m == nil {
				return 0, false
			}
			return field(*m), true
		}, mib)
	}
	idle := func(t *TargetResult) *Memory { return t.IdleMemory }
	busy := func(t *TargetResult) *Memory { return t.BusyMemory }
	mem("daemon RSS idle", idle, func(m Memory) float64 { return m.RSS })
	mem("daemon PSS idle", idle, func(m Memory) float64 { return m.PSS })
	mem(fmt.Sprintf("daemon RSS, %d pods", c.ConcurrentPods), busy, func(m Memory) float64 { return m.RSS })
	mem(fmt.Sprintf("daemon PSS, %d pods", c.ConcurrentPods), busy, func(m Memory) float64 { return m.PSS })
	mem("  of RSS: anonymous", busy, func(m Memory) float64 { return m.Anon })
	mem("  of RSS: file-backed", busy, func(m Memory) float64 { return m.File })
	row("helpers' PSS per container", func(t *TargetResult) (float64, bool) {
		return t.Helpers.perContainer(), t.Helpers != nil
	}, func(x float64) string { return fmt.Sprintf("%.2f MiB", x) })
	tw.Flush()
	for _, t := range r.Targets {
		if h := t.Helpers; h != nil {
			var parts []string
			for name, n := range h.Count {
				parts = append(parts, fmt.Sprintf("%d × %s (median PSS %.2f MiB, total %.1f MiB)", n, name, h.MedianPSS[name], h.PSS[name]))
			}
			if len(parts) == 0 {
				parts = append(parts, "none found")
			}
			fmt.Fprintf(out, "%s helpers for %d containers: %s\n", t.Name, h.Containers, strings.Join(parts, "; "))
		}
	}
	fmt.Fprintln(out)

	for _, t := range r.Targets {
		if len(t.ServerSteps) == 0 {
			continue
		}
		fmt.Fprintf(out, "%s's own step times (mean ms, from its metrics):\n", t.Name)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "workload\tmethod\tstep\tmean\tn\t")
		for _, s := range t.ServerSteps {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%d\t\n", s.Workload, s.Method, s.Step, s.MeanMS, s.N)
		}
		tw.Flush()
		fmt.Fprintln(out)
	}
	if len(r.Floor) > 0 {
		floor := r.Floor[0]
		fmt.Fprintf(out, "floor: %s: p50 %.1f  p95 %.1f  p99 %.1f ms (n %d)\n", floor.Step, floor.P50, floor.P95, floor.P99, floor.N)
		for _, h := range r.FloorHalves {
			fmt.Fprintf(out, "  floor, %s: p50 %.1f  p95 %.1f ms (n %d)\n", h.Step, h.P50, h.P95, h.N)
		}
		for _, t := range r.Targets {
			var parts []string
			for _, shape := range []Shape{Kubelet, SharedPID} {
				if s, ok := t.step(string(shape) + ": pod start (3 calls)"); ok {
					part := fmt.Sprintf("%s pod start p50 = %s the floor", shape, ratio(Ratio(s.P50, floor.P50)))
					if pf, ok := t.step(string(shape) + ": " + pairedFloorStep); ok {
						part += fmt.Sprintf(" (%s its paired floor, p50 %.1f ms)", ratio(Ratio(s.P50, pf.P50)), pf.P50)
					}
					parts = append(parts, part)
				}
			}
			fmt.Fprintf(out, "%s: %s\n", t.Name, strings.Join(parts, ", "))
		}
	}
	if r.FloorError != "" {
		fmt.Fprintf(out, "floor: failed (ratios above, if any, are over the runs before the failure): %s\n", r.FloorError)
	}
	for _, t := range r.Targets {
		for _, e := range t.Errors {
			fmt.Fprintf(out, "%s: ERROR %s\n", t.Name, e)
		}
		for _, e := range t.CleanupErrs {
			fmt.Fprintf(out, "%s: cleanup: %s\n", t.Name, e)
		}
	}
}

func (t *Throughput) startRate() float64 {
	if t == nil {
		return 0
	}
	return t.StartPerSecond
}

func (t *Throughput) stopRate() float64 {
	if t == nil {
		return 0
	}
	return t.StopPerSecond
}

func (h *HelperMemory) perContainer() float64 {
	if h == nil {
		return 0
	}
	return h.PerContainer
}
