package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// percentile returns the p-th percentile (0..100) of ds, nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	idx := int(p/100*float64(len(s))+0.5) - 1
	idx = max(0, min(idx, len(s)-1))
	return s[idx]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

type podRun struct {
	podID, ctrID string
}

// startPod is what kubelet does for a one-container pod with the image
// present: RunPodSandbox, CreateContainer, StartContainer.
func startPod(b *testing.B, d *framework.Daemon, name string) podRun {
	ctx := context.Background()
	pod := d.PodConfig(b, name)
	cfg := framework.ContainerConfig("app", "sleep", "3600")
	framework.MakeLogDir(b, pod, cfg)
	r, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
	if err != nil {
		b.Fatal(err)
	}
	c, err := d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: r.PodSandboxId, Config: cfg, SandboxConfig: pod})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := d.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		b.Fatal(err)
	}
	return podRun{r.PodSandboxId, c.ContainerId}
}

// stopPod is kubelet's teardown, less the grace period: StopContainer,
// StopPodSandbox, RemoveContainer, RemovePodSandbox.
func stopPod(b *testing.B, d *framework.Daemon, p podRun) {
	ctx := context.Background()
	if _, err := d.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: p.ctrID}); err != nil {
		b.Fatal(err)
	}
	if _, err := d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.podID}); err != nil {
		b.Fatal(err)
	}
	if _, err := d.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: p.ctrID}); err != nil {
		b.Fatal(err)
	}
	if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.podID}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPodStart: b.N sequential pods (use -benchtime 50x).
func BenchmarkPodStart(b *testing.B) {
	d := framework.StartDaemon(b, framework.Options{})
	startPod(b, d, "warmup") // first-use costs (page cache, cgroup dirs) out of the figures
	var starts, stops []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		p := startPod(b, d, fmt.Sprintf("bench-%d", i))
		starts = append(starts, time.Since(t0))
		t1 := time.Now()
		stopPod(b, d, p)
		stops = append(stops, time.Since(t1))
	}
	b.StopTimer()
	b.ReportMetric(ms(percentile(starts, 50)), "start-p50-ms")
	b.ReportMetric(ms(percentile(starts, 99)), "start-p99-ms")
	b.ReportMetric(ms(percentile(stops, 50)), "stop+remove-p50-ms")
	b.ReportMetric(ms(percentile(stops, 99)), "stop+remove-p99-ms")
}

// BenchmarkMemory: berthd RSS idle and with 20 running pods, and the PSS of
// one conmon (the memory berth adds per running container). It measures
// once, whatever b.N is: the figures are levels, not per-op costs.
func BenchmarkMemory(b *testing.B) {
	for range 1 {
		// The production log level: the framework's debug logging allocates
		// per call and would measure the test setup, not berthd.
		d := framework.StartDaemon(b, framework.Options{Args: []string{"--log-level", "info"}})
		time.Sleep(time.Second)
		idle := rssMiB(b, d.PID())
		var pods []podRun
		for j := 0; j < 20; j++ {
			pods = append(pods, startPod(b, d, fmt.Sprintf("mem-%d", j)))
		}
		// Steady state, as on a node: give the runtime's background
		// scavenger time to return the start burst's freed heap.
		time.Sleep(10 * time.Second)
		busy := rssMiB(b, d.PID())
		b.ReportMetric(statusMiB(b, d.PID(), "RssAnon:"), "berthd-20pods-anon-MiB")
		b.ReportMetric(statusMiB(b, d.PID(), "RssFile:"), "berthd-20pods-file-MiB")
		var pss []float64
		for _, pid := range conmonPIDs(d.StateDir) {
			pss = append(pss, smapsMiB(b, pid, "Pss:"))
		}
		if len(pss) != 20 {
			b.Fatalf("found %d monitor processes for 20 containers", len(pss))
		}
		sort.Float64s(pss)
		b.ReportMetric(idle, "berthd-idle-RSS-MiB")
		b.ReportMetric(busy, "berthd-20pods-RSS-MiB")
		b.ReportMetric(pss[len(pss)/2], "monitor-PSS-MiB")
		b.ReportMetric(smapsMiB(b, conmonPIDs(d.StateDir)[0], "Rss:"), "monitor-RSS-MiB")
		for _, p := range pods {
			stopPod(b, d, p)
		}
	}
}

func rssMiB(b *testing.B, pid int) float64 { return statusMiB(b, pid, "VmRSS:") }

// statusMiB reads one kB field of /proc/<pid>/status.
func statusMiB(b *testing.B, pid int, field string) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			return kbToMiB(v)
		}
	}
	b.Fatalf("no %s for %d", field, pid)
	return 0
}

func smapsMiB(b *testing.B, pid int, field string) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			return kbToMiB(v)
		}
	}
	b.Fatalf("no %s for %d", field, pid)
	return 0
}

func kbToMiB(v string) float64 {
	kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
	return kb / 1024
}

// conmonPIDs finds the monitor processes (berth-monitor or conmon) serving
// containers under stateDir.
func conmonPIDs(stateDir string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if c := strings.TrimSpace(string(comm)); c != "berth-monitor" && c != "conmon" {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if strings.Contains(string(cmdline), stateDir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// BenchmarkBareRuncRun is the floor: `runc run --detach` of a busybox
// `sleep` with runc's default spec, then `runc delete --force`.
func BenchmarkBareRuncRun(b *testing.B) {
	dir, err := os.MkdirTemp("", "berth-bench-runc-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bundle, root := filepath.Join(dir, "bundle"), filepath.Join(dir, "root")
	rootfs := filepath.Join(bundle, "rootfs")
	for _, p := range []string{filepath.Join(rootfs, "bin"), filepath.Join(rootfs, "proc"), filepath.Join(rootfs, "dev"), filepath.Join(rootfs, "sys")} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	if out, err := exec.Command("cp", "/bin/busybox", filepath.Join(rootfs, "bin", "busybox")).CombinedOutput(); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
	if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", "sleep")); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("runc", "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
	cfg := filepath.Join(bundle, "config.json")
	data, _ := os.ReadFile(cfg)
	s := strings.Replace(string(data), `"sh"`, `"/bin/sleep", "3600"`, 1)
	s = strings.Replace(s, `"terminal": true`, `"terminal": false`, 1)
	if err := os.WriteFile(cfg, []byte(s), 0o644); err != nil {
		b.Fatal(err)
	}
	var runs []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("bench-%d", i)
		t0 := time.Now()
		// stdio stays /dev/null: the detached container inherits it, and a
		// pipe would keep the command from returning.
		if err := exec.Command("runc", "--root", root, "run", "--detach", "--bundle", bundle, id).Run(); err != nil {
			b.Fatalf("runc run: %v", err)
		}
		runs = append(runs, time.Since(t0))
		if out, err := exec.Command("runc", "--root", root, "delete", "--force", id).CombinedOutput(); err != nil {
			b.Fatalf("runc delete: %v: %s", err, out)
		}
	}
	b.StopTimer()
	b.ReportMetric(ms(percentile(runs, 50)), "runc-run-p50-ms")
	b.ReportMetric(ms(percentile(runs, 99)), "runc-run-p99-ms")
}
