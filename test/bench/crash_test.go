package bench

import (
	"os"
	"strconv"
	"testing"

	"github.com/berth-project/berth/test/e2e/framework"
)

// BenchmarkCrashChurn is the crash-safety target: berthd is killed with
// SIGKILL at 50 random points of pod churn (4 kubelet-like workers), and
// must show 0 invariant violations and 0 leaks. One run does all 50 points
// whatever b.N is (BERTH_CRASH_POINTS and BERTH_CRASH_SEED override):
//
//	go test ./test/bench -run '^$' -bench CrashChurn -benchtime 1x -timeout 30m -v
func BenchmarkCrashChurn(b *testing.B) {
	points := 50
	if v, err := strconv.Atoi(os.Getenv("BERTH_CRASH_POINTS")); err == nil && v > 0 {
		points = v
	}
	seed, _ := strconv.ParseUint(os.Getenv("BERTH_CRASH_SEED"), 10, 64)
	d := framework.StartDaemon(b, framework.Options{})
	res := d.CrashChurn(b, framework.ChurnOptions{Workers: 4, KillPoints: points, Seed: seed})
	for _, v := range res.Violations {
		b.Logf("violation: %s", v)
	}
	for _, l := range res.Leaks {
		b.Logf("leak: %s", l)
	}
	b.Logf("kills %d, calls %d, retries %d, adopted %d, pods created %d, removed %d",
		res.Kills, res.Calls, res.Retries, res.Adopted, res.PodsCreated, res.PodsRemoved)
	b.Logf("calls cut by a kill: %v", res.Cut)
	b.Logf("berthd start-up repairs: %v", res.Recovered)
	b.ReportMetric(float64(len(res.Violations)), "violations")
	b.ReportMetric(float64(len(res.Leaks)), "leaks")
	b.ReportMetric(float64(res.Kills), "kills")
	b.ReportMetric(float64(res.Adopted), "adopted")
	b.ReportMetric(0, "ns/op")
}
