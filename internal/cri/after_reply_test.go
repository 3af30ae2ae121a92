package cri

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/stats"
)

// TestAfterStarts: prepare runs prepareDelay after the last pod start
// call in flight ends, once for calls that follow each other closely, and
// not for other calls.
func TestAfterStarts(t *testing.T) {
	var calls atomic.Int32
	h := &afterStarts{prepare: func() { calls.Add(1) }}
	tag := func(m string) context.Context {
		return h.TagRPC(context.Background(), &stats.RPCTagInfo{FullMethodName: "/runtime.v1.RuntimeService/" + m})
	}
	run, create, start, stop := tag("RunPodSandbox"), tag("CreateContainer"), tag("StartContainer"), tag("StopContainer")
	h.HandleRPC(stop, &stats.Begin{})
	h.HandleRPC(stop, &stats.End{})
	h.HandleRPC(run, &stats.Begin{})
	h.HandleRPC(create, &stats.Begin{}) // another pod's, at the same time
	h.HandleRPC(run, &stats.End{})
	time.Sleep(3 * prepareDelay)
	if n := calls.Load(); n != 0 {
		t.Fatalf("prepare ran %d times with a create in flight", n)
	}
	h.HandleRPC(create, &stats.End{})
	h.HandleRPC(start, &stats.Begin{})
	h.HandleRPC(start, &stats.End{})
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(3 * prepareDelay)
	if n := calls.Load(); n != 1 {
		t.Errorf("prepare ran %d times after the pod start calls ended, want 1", n)
	}
}
