package bench

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// BenchmarkExecSync: b.N sequential ExecSync calls of `echo` into one running
// container, the shape of kubelet's exec probes (use -benchtime 200x), and
// beside it the floor: the same `runc exec` run directly.
func BenchmarkExecSync(b *testing.B) {
	d := framework.StartDaemon(b, framework.Options{})
	pod := d.PodConfig(b, "execbench")
	podID := d.RunPod(b, pod)
	id := d.RunContainer(b, podID, pod, framework.Sh("main", "while true; do sleep 1; done"))
	req := &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"echo", "ok"}, Timeout: 10}
	execOnce := func() {
		resp, err := d.Runtime.ExecSync(framework.Ctx(b), req)
		if err != nil || string(resp.Stdout) != "ok\n" {
			b.Fatalf("ExecSync = %v, %v", resp, err)
		}
	}
	execOnce() // first-use costs out of the figures

	var calls []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		execOnce()
		calls = append(calls, time.Since(t0))
	}
	b.StopTimer()

	// The floor, over the same container and runtime root: what the OCI
	// runtime's exec costs by itself. At most 50 runs.
	root := filepath.Join(d.StateDir, "runtimes", "runc")
	var floor []time.Duration
	for i := 0; i < min(b.N, 50); i++ {
		t0 := time.Now()
		if out, err := exec.Command(framework.Runc(), "--root", root, "exec", id, "echo", "ok").CombinedOutput(); err != nil || string(out) != "ok\n" {
			b.Fatalf("runc exec: %v: %s", err, out)
		}
		floor = append(floor, time.Since(t0))
	}
	b.ReportMetric(ms(percentile(calls, 50)), "execsync-p50-ms")
	b.ReportMetric(ms(percentile(calls, 99)), "execsync-p99-ms")
	b.ReportMetric(ms(percentile(floor, 50)), "runc-exec-p50-ms")
	b.ReportMetric(ms(percentile(floor, 99)), "runc-exec-p99-ms")
}
