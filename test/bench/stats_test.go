package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// cpuTicks is the user+system CPU time of pid, in clock ticks (1/100 s).
func cpuTicks(b *testing.B, pid int) uint64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command (which may hold spaces) start after ") ".
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseUint(f[11], 10, 64)
	stime, _ := strconv.ParseUint(f[12], 10, 64)
	return utime + stime
}

const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux

// BenchmarkListContainerStats: ListContainerStats (and ListPodSandboxStats)
// with 50 running containers, one per pod as kubelet runs most pods: p50
// latency and berthd CPU time per call. b.N calls of each (use
// -benchtime 200x: CPU time is read in 10 ms ticks).
func BenchmarkListContainerStats(b *testing.B) {
	d := framework.StartDaemon(b, framework.Options{})
	var pods []podRun
	for i := 0; i < 50; i++ {
		pods = append(pods, startPod(b, d, fmt.Sprintf("stats-%d", i)))
	}
	ctx := context.Background()
	time.Sleep(time.Second)
	rssBefore := rssMiB(b, d.PID())
	// Warm up: the first call queues every writable layer for measuring.
	for i := 0; i < 3; i++ {
		if _, err := d.Runtime.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{}); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second)
	measure := func(call func() int) (p50 time.Duration, cpu time.Duration) {
		var lat []time.Duration
		t0 := cpuTicks(b, d.PID())
		for i := 0; i < b.N; i++ {
			start := time.Now()
			if n := call(); n != 50 {
				b.Fatalf("got stats of %d, want 50", n)
			}
			lat = append(lat, time.Since(start))
		}
		used := time.Duration(cpuTicks(b, d.PID())-t0) * tick
		return percentile(lat, 50), used / time.Duration(b.N)
	}
	b.ResetTimer()
	cp50, ccpu := measure(func() int {
		r, err := d.Runtime.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{})
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range r.Stats {
			if s.GetWritableLayer() == nil || s.GetMemory() == nil {
				b.Fatalf("incomplete stats %v", s)
			}
		}
		return len(r.Stats)
	})
	pp50, pcpu := measure(func() int {
		r, err := d.Runtime.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{})
		if err != nil {
			b.Fatal(err)
		}
		return len(r.Stats)
	})
	b.StopTimer()
	b.ReportMetric(ms(cp50), "ctr-p50-ms")
	b.ReportMetric(ms(ccpu), "ctr-cpu-ms/call")
	b.ReportMetric(ms(pp50), "pod-p50-ms")
	b.ReportMetric(ms(pcpu), "pod-cpu-ms/call")
	b.ReportMetric(rssBefore, "RSS-before-MiB")
	b.ReportMetric(rssMiB(b, d.PID()), "RSS-after-MiB")
	for _, p := range pods {
		stopPod(b, d, p)
	}
}
