package cri

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/stats"
)

// TestAfterStart: prepare runs at the end of a StartContainer call, not
// before its end, and not for other calls.
func TestAfterStart(t *testing.T) {
	var calls atomic.Int32
	h := afterStart{prepare: func() { calls.Add(1) }}
	start := h.TagRPC(context.Background(), &stats.RPCTagInfo{FullMethodName: startContainerMethod})
	other := h.TagRPC(context.Background(), &stats.RPCTagInfo{FullMethodName: "/runtime.v1.RuntimeService/CreateContainer"})
	h.HandleRPC(start, &stats.Begin{})
	h.HandleRPC(start, &stats.OutPayload{})
	h.HandleRPC(other, &stats.End{})
	time.Sleep(2 * prepareDelay)
	if n := calls.Load(); n != 0 {
		t.Fatalf("prepare ran %d times before a StartContainer ended", n)
	}
	h.HandleRPC(start, &stats.End{})
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(2 * prepareDelay)
	if n := calls.Load(); n != 1 {
		t.Errorf("prepare ran %d times after a StartContainer ended, want 1", n)
	}
}
