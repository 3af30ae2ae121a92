package main

import (
	"context"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestSecondSample: with only cumulative CPU counters, stats and statsp list
// twice and compute the rate between the samples; with usage_nano_cores
// from the runtime they list once.
func TestSecondSample(t *testing.T) {
	cum := func(ts, ns int64) *runtimeapi.CpuUsage {
		return &runtimeapi.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: uint64(ns)}}
	}
	type obj struct {
		id  string
		cpu *runtimeapi.CpuUsage
	}
	get := func(o obj) (string, *runtimeapi.CpuUsage) { return o.id, o.cpu }
	calls := 0
	list := func() ([]obj, error) { calls++; return []obj{{"a", cum(2e9, 1.5e9)}}, nil }

	got, prev, err := secondSample(context.Background(), 1, []obj{{"a", cum(1e9, 1e9)}}, list, get)
	if err != nil || calls != 1 || len(got) != 1 {
		t.Fatalf("cumulative: %v, %d lists, %v", err, calls, got)
	}
	if p := cpuPercent(prev["a"], got[0].cpu); p != 50 {
		t.Errorf("cpu %% = %v, want 50 (0.5 s of CPU in 1 s)", p)
	}

	calls = 0
	nano := []obj{{"a", &runtimeapi.CpuUsage{UsageNanoCores: &runtimeapi.UInt64Value{Value: 25e7}}}}
	got, prev, err = secondSample(context.Background(), 1, nano, list, get)
	if err != nil || calls != 0 || cpuPercent(prev["a"], got[0].cpu) != 25 {
		t.Errorf("nano cores: %v, %d lists, %v", err, calls, got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := secondSample(ctx, 1, []obj{{"a", cum(1e9, 1e9)}}, list, get); err == nil {
		t.Error("a cancelled wait should fail")
	}
}
