package bench

import (
	"os"
	"strconv"
	"testing"

	"github.com/berth-project/berth/test/e2e/framework"
)

// BenchmarkCrashChurn is the crash-safety target: berthd is killed with
// SIGKILL at 100 points of pod churn (4 kubelet-like workers) and image
// churn (pulls from a loopback registry and removals), a fifth of them at
// random moments and the rest aimed into StopPodSandbox, RemovePodSandbox,
// PullImage and RemoveImage, and must show 0 invariant violations and 0
// leaks. One run does all 100 points whatever b.N is (BERTH_CRASH_POINTS
// and BERTH_CRASH_SEED override):
//
//	go test ./test/bench -run '^$' -bench CrashChurn -benchtime 1x -timeout 60m -v
func BenchmarkCrashChurn(b *testing.B) {
	points := 100
	if v, err := strconv.Atoi(os.Getenv("BERTH_CRASH_POINTS")); err == nil && v > 0 {
		points = v
	}
	seed, _ := strconv.ParseUint(os.Getenv("BERTH_CRASH_SEED"), 10, 64)
	// berthd's default pod network prepared ahead, which the framework's
	// daemons turn off.
	d := framework.StartDaemon(b, framework.Options{Config: "[network]\nprepare_ahead = true\n"})
	res := d.CrashChurn(b, framework.ChurnOptions{Workers: 4, KillPoints: points, Seed: seed, Images: 3})
	for _, v := range res.Violations {
		b.Logf("violation: %s", v)
	}
	for _, l := range res.Leaks {
		b.Logf("leak: %s", l)
	}
	res.Log(b)
	hit := 0
	for _, n := range res.Hit {
		hit += n
	}
	b.ReportMetric(float64(len(res.Violations)), "violations")
	b.ReportMetric(float64(len(res.Leaks)), "leaks")
	b.ReportMetric(float64(res.Kills), "kills")
	b.ReportMetric(float64(hit), "kills-in-target-rpc")
	b.ReportMetric(float64(res.Adopted), "adopted")
	b.ReportMetric(0, "ns/op")
}
