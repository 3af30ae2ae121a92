package memtrim

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
)

const quiet = 50 * time.Millisecond

func start(t *testing.T, after time.Duration) (*Trimmer, *atomic.Int32) {
	return startGap(t, after, 0)
}

func startGap(t *testing.T, after, minGap time.Duration) (*Trimmer, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	tr := New(after, func() { n.Add(1) }, func() {})
	tr.minGap = minGap
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tr.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return tr, &n
}

func TestTrimsOnceAfterABurst(t *testing.T) {
	tr, n := start(t, quiet)
	time.Sleep(2 * quiet)
	if got := n.Load(); got != 0 {
		t.Fatalf("trimmed %d times with no call", got)
	}
	// A burst: calls closer together than the quiet spell.
	var last time.Time
	for range 5 {
		tr.Begin()()
		last = time.Now()
		time.Sleep(quiet / 5)
	}
	time.Sleep(quiet / 2)
	// Read before the clock: a trim seen now happened before the reading.
	if got, since := n.Load(), time.Since(last); got != 0 && since < quiet {
		t.Fatalf("trimmed %d times %v after the burst's last call, before its quiet spell", got, since)
	}
	waitFor(t, n, 1)
	time.Sleep(3 * quiet)
	if got := n.Load(); got != 1 {
		t.Errorf("trimmed %d times after one burst, want 1", got)
	}
}

func TestNoTrimWhileACallRuns(t *testing.T) {
	tr, n := start(t, quiet)
	tr.Begin()() // a call that ended
	end := tr.Begin()
	time.Sleep(4 * quiet)
	if got := n.Load(); got != 0 {
		t.Fatalf("trimmed %d times while a call was in flight", got)
	}
	end()
	waitFor(t, n, 1)
}

// TestMinGap: a burst right after a trim waits for the gap, then trims
// once.
func TestMinGap(t *testing.T) {
	gap := 8 * quiet
	tr, n := startGap(t, quiet, gap)
	tr.Begin()()
	waitFor(t, n, 1)
	first := time.Now()
	tr.Begin()()
	waitFor(t, n, 2)
	if d := time.Since(first); d < gap-quiet/2 {
		t.Errorf("second trim %v after the first, want at least the gap %v", d, gap)
	}
	time.Sleep(2 * quiet)
	if got := n.Load(); got != 2 {
		t.Errorf("trimmed %d times after two bursts, want 2", got)
	}
}

func TestDisabled(t *testing.T) {
	tr, n := start(t, 0)
	tr.Begin()()
	time.Sleep(2 * quiet)
	if got := n.Load(); got != 0 {
		t.Errorf("trimmed %d times with a delay of 0 (never)", got)
	}
}

func TestPolledCallsDoNotCount(t *testing.T) {
	tr, n := start(t, quiet)
	handler := func(context.Context, any) (any, error) { return nil, nil }
	for _, m := range []string{"/runtime.v1.RuntimeService/ListContainers", "/runtime.v1.RuntimeService/ContainerStatus", "/runtime.v1.ImageService/ImageFsInfo"} {
		tr.UnaryInterceptor(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: m}, handler)
	}
	time.Sleep(3 * quiet)
	if got := n.Load(); got != 0 {
		t.Fatalf("polled calls started %d trims", got)
	}
	tr.UnaryInterceptor(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/StartContainer"}, handler)
	waitFor(t, n, 1)
}

func TestIdleTrimAfterEachCollection(t *testing.T) {
	var idle atomic.Int32
	tr := New(quiet, func() {}, func() { idle.Add(1) })
	tr.minGap = 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tr.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	end := tr.Begin() // in flight: a collection must not trim
	runtime.GC()
	time.Sleep(quiet)
	if got := idle.Load(); got != 0 {
		t.Fatalf("%d idle trims while a call was in flight", got)
	}
	end()
	time.Sleep(2 * quiet)
	for i := int32(1); i <= 3; i++ {
		runtime.GC()
		deadline := time.Now().Add(5 * time.Second)
		for idle.Load() < i {
			if time.Now().After(deadline) {
				t.Fatalf("%d idle trims after %d collections at rest", idle.Load(), i)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

func TestPolled(t *testing.T) {
	for m, want := range map[string]bool{
		"/runtime.v1.RuntimeService/ListPodSandbox":      true,
		"/runtime.v1.RuntimeService/PodSandboxStatus":    true,
		"/runtime.v1.RuntimeService/ListContainerStats":  true,
		"/runtime.v1.RuntimeService/ContainerStats":      true,
		"/runtime.v1.RuntimeService/Status":              true,
		"/runtime.v1.RuntimeService/Version":             true,
		"/runtime.v1.ImageService/ImageStatus":           true,
		"/runtime.v1.RuntimeService/RunPodSandbox":       false,
		"/runtime.v1.RuntimeService/ExecSync":            true,
		"/runtime.v1.RuntimeService/PortForward":         true,
		"/runtime.v1.RuntimeService/StopContainer":       false,
		"/runtime.v1.ImageService/PullImage":             false,
		"/runtime.v1.RuntimeService/UpdateRuntimeConfig": false,
	} {
		if got := Polled(m); got != want {
			t.Errorf("Polled(%s) = %v, want %v", m, got, want)
		}
	}
}

func waitFor(t *testing.T, n *atomic.Int32, want int32) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for n.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("trimmed %d times in 5 s, want %d", n.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
}
