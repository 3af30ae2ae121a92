package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/admin"
)

// progressEvery is how often a pull's progress is polled and drawn.
const progressEvery = 200 * time.Millisecond

// pullImage runs PullImage (unary in CRI) while polling berthd's admin
// service for the pull's progress, drawn on stderr: a live bar per layer on
// a terminal, plain lines otherwise. Runtimes without the admin service
// pull silently.
func (a *app) pullImage(ctx context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	type result struct {
		resp *runtimeapi.PullImageResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := a.img.PullImage(ctx, req)
		done <- result{resp, err}
	}()
	var r progressRenderer = &plainProgress{w: a.stderr}
	if isTerminal(a.stderr) {
		r = &termProgress{w: a.stderr}
	}
	ref := normalizeRef(req.GetImage().GetImage())
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	polling := true
	var last *admin.PullProgress
	for {
		select {
		case res := <-done:
			if last != nil {
				r.finish(*last, res.err == nil, time.Now())
			}
			return res.resp, res.err
		case <-tick.C:
			if !polling {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			pulls, err := a.adm.PullProgress(pctx)
			cancel()
			if status.Code(err) == codes.Unimplemented {
				polling = false
				continue
			}
			if err != nil {
				continue // the pull's own answer will say what is wrong
			}
			for i := range pulls {
				if normalizeRef(pulls[i].Ref) == ref {
					last = &pulls[i]
					r.update(*last, time.Now())
					break
				}
			}
		}
	}
}

// progressRenderer draws successive snapshots of one pull.
type progressRenderer interface {
	update(p admin.PullProgress, now time.Time)
	// finish draws the end: ok says whether the pull succeeded (then every
	// layer is complete, whatever the last snapshot said).
	finish(p admin.PullProgress, ok bool, now time.Time)
}

// totals sums a snapshot: bytes fetched and to fetch, over the layers this
// pull downloads (not those already present or fetched by another pull).
func totals(p admin.PullProgress) (got, size int64, layers int) {
	for _, l := range p.Layers {
		if l.State == "present" || l.State == "shared" {
			continue
		}
		got += l.Bytes
		size += l.Size
		layers++
	}
	return got, size, layers
}

func rate(bytes int64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return humanSize(uint64(float64(bytes)/d.Seconds())) + "/s"
}

func layerName(digest string) string {
	_, hex, ok := strings.Cut(digest, ":")
	if !ok {
		hex = digest
	}
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return hex
}

// bar draws a fraction as [=====>    ] of width cells.
func bar(got, size int64, width int) string {
	if size <= 0 {
		return "[" + strings.Repeat(" ", width) + "]"
	}
	n := int(float64(width) * float64(min(got, size)) / float64(size))
	switch {
	case n >= width:
		return "[" + strings.Repeat("=", width) + "]"
	case n == 0:
		return "[>" + strings.Repeat(" ", width-1) + "]"
	}
	return "[" + strings.Repeat("=", n-1) + ">" + strings.Repeat(" ", width-n) + "]"
}

// termProgress redraws one line per layer and a total line in place.
type termProgress struct {
	w     io.Writer
	lines int // drawn last time, to move back over
}

func (t *termProgress) update(p admin.PullProgress, now time.Time) { t.draw(p, now, false) }

func (t *termProgress) finish(p admin.PullProgress, ok bool, now time.Time) {
	if ok {
		for i := range p.Layers {
			if p.Layers[i].State != "present" && p.Layers[i].State != "shared" {
				p.Layers[i].State, p.Layers[i].Bytes = "done", p.Layers[i].Size
			}
		}
	}
	t.draw(p, now, true)
}

func (t *termProgress) draw(p admin.PullProgress, now time.Time, final bool) {
	var b strings.Builder
	if t.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", t.lines) // back to the first line
	}
	for _, l := range p.Layers {
		fmt.Fprintf(&b, "%s  %-11s %s %8s / %-8s\x1b[K\n", layerName(l.Digest), l.State, bar(l.Bytes, l.Size, 30),
			humanSize(uint64(l.Bytes)), humanSize(uint64(l.Size)))
	}
	got, size, _ := totals(p)
	elapsed := now.Sub(p.Started)
	word := "pulling"
	if final {
		word = "pulled"
	}
	fmt.Fprintf(&b, "%s %s: %s / %s  %s  %s\x1b[K\n", word, p.Ref, humanSize(uint64(got)), humanSize(uint64(size)),
		rate(got, elapsed), elapsed.Round(100*time.Millisecond))
	t.lines = len(p.Layers) + 1
	_, _ = io.WriteString(t.w, b.String())
}

// plainProgress writes a line when a layer changes state, and a total
// every few seconds: for logs and pipes.
type plainProgress struct {
	w         io.Writer
	states    map[string]string
	lastTotal time.Time
}

const plainTotalEvery = 2 * time.Second

func (p *plainProgress) update(s admin.PullProgress, now time.Time) {
	if p.states == nil {
		p.states = map[string]string{}
		p.lastTotal = now
	}
	for _, l := range s.Layers {
		if p.states[l.Digest] == l.State {
			continue
		}
		p.states[l.Digest] = l.State
		fmt.Fprintf(p.w, "%s: %s %s\n", layerName(l.Digest), l.State, humanSize(uint64(l.Size)))
	}
	if now.Sub(p.lastTotal) >= plainTotalEvery {
		p.lastTotal = now
		got, size, _ := totals(s)
		fmt.Fprintf(p.w, "%s: %s of %s (%s)\n", s.Ref, humanSize(uint64(got)), humanSize(uint64(size)), rate(got, now.Sub(s.Started)))
	}
}

func (p *plainProgress) finish(s admin.PullProgress, ok bool, now time.Time) {
	if !ok {
		return // the error says the rest
	}
	for _, l := range s.Layers {
		if l.State != "present" && l.State != "shared" && p.states[l.Digest] != "done" {
			fmt.Fprintf(p.w, "%s: done %s\n", layerName(l.Digest), humanSize(uint64(l.Size)))
		}
	}
	_, size, n := totals(s)
	elapsed := now.Sub(s.Started)
	fmt.Fprintf(p.w, "pulled %s: %d layers, %s in %s (%s)\n", s.Ref, n, humanSize(uint64(size)), elapsed.Round(100*time.Millisecond), rate(size, elapsed))
}
