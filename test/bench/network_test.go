package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"regexp"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// netLogLine matches berthd's debug lines for the CNI part of a pod's start
// and stop (network.Manager's Setup and Teardown).
var netLogLine = regexp.MustCompile(`msg="pod network (set up|torn down)" pod=(\w+) .*took=(\S+)`)

// BenchmarkNetworkSetup: b.N sequential pods without containers (use
// -benchtime 50x) on the built-in bridge network (the framework's isolated
// test variant: no default route, no masquerade). The CNI ADD (loopback,
// bridge + host-local, portmap) and DEL times are berthd's own, read from
// its debug log; RunPodSandbox is the whole call as kubelet sees it.
func BenchmarkNetworkSetup(b *testing.B) {
	d := framework.StartDaemon(b, framework.Options{NoImage: true})
	ctx := context.Background()
	run := func(name string) string {
		r, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: d.PodConfig(b, name)})
		if err != nil {
			b.Fatal(err)
		}
		return r.PodSandboxId
	}
	stop := func(id string) {
		if _, err := d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			b.Fatal(err)
		}
		if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			b.Fatal(err)
		}
	}
	stop(run("warmup")) // creates the bridge: a one-time cost
	var runs []time.Duration
	ids := map[string]bool{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		id := run(fmt.Sprintf("net-%d", i))
		runs = append(runs, time.Since(t0))
		ids[id] = true
		stop(id)
	}
	b.StopTimer()
	adds, dels := networkTimes(b, d.LogPath, ids)
	if len(adds) != b.N || len(dels) != b.N {
		b.Fatalf("found %d ADD and %d DEL times in the log for %d pods", len(adds), len(dels), b.N)
	}
	b.ReportMetric(ms(percentile(adds, 50)), "cni-add-p50-ms")
	b.ReportMetric(ms(percentile(adds, 99)), "cni-add-p99-ms")
	b.ReportMetric(ms(percentile(dels, 50)), "cni-del-p50-ms")
	b.ReportMetric(ms(percentile(dels, 99)), "cni-del-p99-ms")
	b.ReportMetric(ms(percentile(runs, 50)), "runpod-p50-ms")
	b.ReportMetric(ms(percentile(runs, 99)), "runpod-p99-ms")
}

// networkTimes reads the ADD and DEL durations of the pods in ids from
// berthd's log.
func networkTimes(b *testing.B, logPath string, ids map[string]bool) (adds, dels []time.Duration) {
	f, err := os.Open(logPath)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := netLogLine.FindStringSubmatch(sc.Text())
		if m == nil || !ids[m[2]] {
			continue
		}
		d, err := time.ParseDuration(m[3])
		if err != nil {
			b.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if m[1] == "set up" {
			adds = append(adds, d)
		} else {
			dels = append(dels, d)
		}
	}
	return adds, dels
}
