package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-project/berth/test/e2e/framework"
)

// TestBenchCommand runs cmd/berth-bench against a real berthd with tiny
// counts, as a smoke test of the command (images pushed to a loopback
// registry and pulled through a mirror, every workload, the floor, the JSON
// report and the cleanup). It asserts what was measured, never how fast.
func TestBenchCommand(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "berth-bench")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/berth-bench")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/berth-bench: %v\n%s", err, out)
	}
	reg := framework.StartRegistry(t, framework.RegistryOptions{})
	if out, err := exec.Command(bin, "images", "--registry", reg.Host, "--pull-layers", "1", "--pull-layer-mib", "1").CombinedOutput(); err != nil {
		t.Fatalf("berth-bench images: %v\n%s", err, out)
	}
	mirrors := filepath.Join(dir, "registries.d")
	hosts := filepath.Join(mirrors, "bench.berth.test", "hosts.toml")
	if err := os.MkdirAll(filepath.Dir(hosts), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("server = \"https://bench.berth.test\"\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", reg.Host)
	if err := os.WriteFile(hosts, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	d := framework.StartDaemon(t, framework.Options{
		NoImage: true,
		Config:  fmt.Sprintf("[images]\nregistry_config_dir = %q\n", mirrors),
	})

	report := filepath.Join(dir, "report.json")
	start := time.Now()
	cmd := exec.Command(bin, "run",
		"--target", "name=berth,endpoint=unix://"+d.Socket+",helpers=berth-monitor|conmon", // pid: found from the socket
		"--pods", "2", "--concurrent-pods", "3", "--clients", "2", "--execs", "2", "--lists", "1",
		"--pulls", "1", "--floor-runs", "2", "--settle", "0s", "--json", report)
	out, err := cmd.CombinedOutput()
	t.Logf("berth-bench run took %v:\n%s", time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("berth-bench run: %v", err)
	}
	for _, want := range []string{"kubelet: pod start (3 calls)", "helpers' PSS per container", "floor: runc run", "its paired floor"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the table has no %q", want)
		}
	}

	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Floor   []struct{ N int }
		Targets []struct {
			PID   int
			Steps []struct {
				Step string
				N    int
			}
			Throughput *struct {
				StartPerSecond float64 `json:"start_pods_per_second"`
				StopPerSecond  float64 `json:"stop_remove_pods_per_second"`
			}
			Idle *struct {
				RSS float64 `json:"rss_mib"`
			} `json:"daemon_idle"`
			Busy *struct {
				PSS float64 `json:"pss_mib"`
			} `json:"daemon_with_pods"`
			Helpers *struct{ Count map[string]int } `json:"helpers"`
			Errors  []string
		}
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, data)
	}
	if len(rep.Targets) != 1 {
		t.Fatalf("report has %d targets, want 1", len(rep.Targets))
	}
	tr := rep.Targets[0]
	if tr.PID != d.PID() {
		t.Errorf("daemon pid %d, want berthd's %d (found from the socket)", tr.PID, d.PID())
	}
	n := map[string]int{}
	for _, s := range tr.Steps {
		n[s.Step] = s.N
	}
	want := map[string]int{
		"kubelet: pod start (3 calls)":               2,
		"kubelet: stop+remove (4 calls)":             2,
		"shared-pid: RunPodSandbox":                  2,
		"shared-pid: pod start (3 calls)":            2,
		"kubelet: paired floor: runc run --detach":   2,
		"ExecSync (echo)":                            2,
		"3 pods by 2 clients: pod start (3 calls)":   3,
		"3 pods by 2 clients: stop+remove (4 calls)": 3,
		"with 3 pods: ListContainerStats":            1,
		"PullImage (cold, loopback registry)":        1,
	}
	for step, count := range want {
		if n[step] != count {
			t.Errorf("step %q measured %d times, want %d (steps: %v)", step, n[step], count, n)
		}
	}
	if tr.Throughput == nil || tr.Throughput.StartPerSecond <= 0 || tr.Throughput.StopPerSecond <= 0 {
		t.Errorf("throughput %+v", tr.Throughput)
	}
	if tr.Idle == nil || tr.Idle.RSS <= 0 || tr.Busy == nil || tr.Busy.PSS <= 0 {
		t.Errorf("daemon memory idle %+v, with pods %+v", tr.Idle, tr.Busy)
	}
	if tr.Helpers == nil || tr.Helpers.Count["berth-monitor"] != 3 {
		t.Errorf("helpers %+v, want 3 berth-monitor", tr.Helpers)
	}
	if len(rep.Floor) != 1 || rep.Floor[0].N != 2 {
		t.Errorf("floor %+v, want 2 runs", rep.Floor)
	}
	if len(tr.Errors) > 0 {
		t.Errorf("errors: %v", tr.Errors)
	}
}
