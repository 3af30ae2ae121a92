package main

import (
	"strings"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/admin"
)

func snapshot(states [3]string, bytes [3]int64) admin.PullProgress {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	p := admin.PullProgress{Ref: "r.example/app:1", Started: t0}
	for i, d := range []string{"sha256:aaaaaaaaaaaaaaaa", "sha256:bbbbbbbbbbbbbbbb", "sha256:cccccccccccccccc"} {
		p.Layers = append(p.Layers, admin.LayerProgress{Digest: d, Size: 3_000_000, Bytes: bytes[i], State: states[i]})
	}
	return p
}

// TestProgressTerminal is the golden output of the live bars: redrawn in
// place (cursor up, clear to end of line), complete at the end.
func TestProgressTerminal(t *testing.T) {
	var b strings.Builder
	r := &termProgress{w: &b}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r.update(snapshot([3]string{"downloading", "waiting", "present"}, [3]int64{1_500_000, 0, 0}), t0.Add(time.Second))
	r.finish(snapshot([3]string{"done", "downloading", "present"}, [3]int64{3_000_000, 2_000_000, 0}), true, t0.Add(2*time.Second))
	want := "aaaaaaaaaaaa  downloading [==============>               ]    1.5MB / 3MB     \x1b[K\n" +
		"bbbbbbbbbbbb  waiting     [>                             ]       0B / 3MB     \x1b[K\n" +
		"cccccccccccc  present     [>                             ]       0B / 3MB     \x1b[K\n" +
		"pulling r.example/app:1: 1.5MB / 6MB  1.5MB/s  1s\x1b[K\n" +
		"\x1b[4A" +
		"aaaaaaaaaaaa  done        [==============================]      3MB / 3MB     \x1b[K\n" +
		"bbbbbbbbbbbb  done        [==============================]      3MB / 3MB     \x1b[K\n" +
		"cccccccccccc  present     [>                             ]       0B / 3MB     \x1b[K\n" +
		"pulled r.example/app:1: 6MB / 6MB  3MB/s  2s\x1b[K\n"
	if b.String() != want {
		t.Errorf("terminal progress:\n%q\nwant\n%q", b.String(), want)
	}
}

// TestProgressPlain is the golden output for pipes: a line per layer state
// change, a total every 2 s, a summary.
func TestProgressPlain(t *testing.T) {
	var b strings.Builder
	r := &plainProgress{w: &b}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r.update(snapshot([3]string{"downloading", "waiting", "present"}, [3]int64{1_000_000, 0, 0}), t0.Add(200*time.Millisecond))
	r.update(snapshot([3]string{"downloading", "waiting", "present"}, [3]int64{1_500_000, 0, 0}), t0.Add(time.Second))
	r.update(snapshot([3]string{"done", "downloading", "present"}, [3]int64{3_000_000, 1_000_000, 0}), t0.Add(2500*time.Millisecond))
	r.finish(snapshot([3]string{"done", "downloading", "present"}, [3]int64{3_000_000, 2_000_000, 0}), true, t0.Add(3*time.Second))
	want := `aaaaaaaaaaaa: downloading 3MB
bbbbbbbbbbbb: waiting 3MB
cccccccccccc: present 3MB
aaaaaaaaaaaa: done 3MB
bbbbbbbbbbbb: downloading 3MB
r.example/app:1: 4MB of 6MB (1.6MB/s)
bbbbbbbbbbbb: done 3MB
pulled r.example/app:1: 2 layers, 6MB in 3s (2MB/s)
`
	if b.String() != want {
		t.Errorf("plain progress:\n%s\nwant\n%s", b.String(), want)
	}
}
