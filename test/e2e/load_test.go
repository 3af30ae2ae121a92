package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

const (
	loadPods    = 100
	loadClients = 10
)

// daemonGauges are berthd's own resource counts, which must come back to
// their idle values once every pod is gone.
type daemonGauges struct {
	fds, goroutines int
}

func readGauges(t *testing.T, d *framework.Daemon, metricsURL string) daemonGauges {
	t.Helper()
	var g daemonGauges
	fds, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(d.PID()), "fd"))
	if err != nil {
		t.Fatal(err)
	}
	g.fds = len(fds)
	// No keep-alive: an idle connection would hold an fd and a goroutine.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			g.goroutines, _ = strconv.Atoi(v)
		}
	}
	return g
}

// waitIdle waits until berthd's gauges are back to at most idle (a
// goroutine of a just-closed stream may take a moment to end; on a loaded
// machine two once took longer than 15 s, then ended) and reports them,
// with berthd's goroutine stacks, when they do not come back: a leak stays.
func waitIdle(t *testing.T, d *framework.Daemon, metricsURL string, idle daemonGauges) daemonGauges {
	t.Helper()
	var g daemonGauges
	if !waitUntil(60*time.Second, func() bool {
		g = readGauges(t, d, metricsURL)
		return g.fds <= idle.fds && g.goroutines <= idle.goroutines
	}) {
		t.Errorf("berthd after every pod was removed: %d fds and %d goroutines, idle was %d and %d", g.fds, g.goroutines, idle.fds, idle.goroutines)
		// Which ones: berthd logs every goroutine's stack on SIGUSR1, and
		// the log is printed with the failure.
		if pid := d.PID(); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGUSR1)
			time.Sleep(500 * time.Millisecond)
		}
	}
	return g
}

// latencies collects call durations, safe for concurrent use.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// pct returns the p-th percentile (nearest rank).
func (l *latencies) pct(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	s := slices.Clone(l.d)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func (l *latencies) String() string {
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v", len(l.d), l.pct(50).Round(10*time.Microsecond),
		l.pct(99).Round(10*time.Microsecond), l.pct(100).Round(10*time.Microsecond))
}

// poller calls what kubelet polls: ListPodSandbox and ListContainers every
// 0.6 s (the generic PLEG's relist, plus its status sync), and
// ListContainerStats every 10 s (the summary API's cadence).
type poller struct {
	lists, stats latencies
	errs         []error
	mu           sync.Mutex
	stop         chan struct{}
	done         sync.WaitGroup
}

func startPoller(d *framework.Daemon) *poller {
	p := &poller{stop: make(chan struct{})}
	call := func(l *latencies, fn func(ctx context.Context) error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		if err := fn(ctx); err != nil {
			p.mu.Lock()
			p.errs = append(p.errs, err)
			p.mu.Unlock()
			return
		}
		l.add(time.Since(start))
	}
	loop := func(every time.Duration, fn func()) {
		defer p.done.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			fn()
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}
	p.done.Add(2)
	go loop(600*time.Millisecond, func() {
		call(&p.lists, func(ctx context.Context) error {
			_, err := d.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
			return err
		})
		call(&p.lists, func(ctx context.Context) error {
			_, err := d.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
			return err
		})
	})
	go loop(10*time.Second, func() {
		call(&p.stats, func(ctx context.Context) error {
			_, err := d.Runtime.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{})
			return err
		})
	})
	return p
}

func (p *poller) halt() {
	close(p.stop)
	p.done.Wait()
}

// loadRound creates loadPods pods with one running container each from
// loadClients concurrent clients, checks they all run, then stops and
// removes them all the way kubelet does, again from loadClients clients.
// Every call must succeed.
func loadRound(t *testing.T, d *framework.Daemon, round string) (create, remove time.Duration, calls map[string]*latencies) {
	t.Helper()
	calls = map[string]*latencies{}
	for _, m := range []string{"RunPodSandbox", "CreateContainer", "StartContainer", "StopContainer", "RemoveContainer", "StopPodSandbox", "RemovePodSandbox"} {
		calls[m] = &latencies{}
	}
	timed := func(method string, fn func() error) error {
		start := time.Now()
		err := fn()
		if err != nil {
			return fmt.Errorf("%s: %w", method, err)
		}
		calls[method].add(time.Since(start))
		return nil
	}
	type pod struct {
		cfg     *runtimeapi.PodSandboxConfig
		id, ctr string
		ctrCfg  *runtimeapi.ContainerConfig
	}
	pods := make([]*pod, loadPods)
	for i := range pods {
		cfg := d.PodConfig(t, fmt.Sprintf("load-%s-%03d", round, i))
		// Ends at SIGTERM, as a well-behaved workload does (a bare sleep
		// as PID 1 ignores it and would wait out the grace period).
		ctr := framework.Sh("app", "trap 'exit 0' TERM; sleep 3600 & wait")
		framework.MakeLogDir(t, cfg, ctr)
		pods[i] = &pod{cfg: cfg, ctrCfg: ctr}
	}
	var mu sync.Mutex
	var errs []string
	fail := func(format string, args ...any) {
		mu.Lock()
		errs = append(errs, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	// each runs fn for every pod, loadClients at a time, client c taking
	// pods c, c+loadClients, ...
	each := func(fn func(ctx context.Context, p *pod) error) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for c := range loadClients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := c; i < len(pods); i += loadClients {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
					if err := fn(ctx, pods[i]); err != nil {
						fail("%s: %v", pods[i].cfg.Metadata.Name, err)
					}
					cancel()
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	create = each(func(ctx context.Context, p *pod) error {
		if err := timed("RunPodSandbox", func() error {
			run, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: p.cfg})
			if err == nil {
				p.id = run.PodSandboxId
			}
			return err
		}); err != nil {
			return err
		}
		if err := timed("CreateContainer", func() error {
			cr, err := d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: p.id, Config: p.ctrCfg, SandboxConfig: p.cfg})
			if err == nil {
				p.ctr = cr.ContainerId
			}
			return err
		}); err != nil {
			return err
		}
		return timed("StartContainer", func() error {
			_, err := d.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: p.ctr})
			return err
		})
	})
	for _, e := range errs {
		t.Error(e)
	}
	if t.Failed() {
		t.FailNow()
	}
	running := containerIDs(t, d, &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
	if len(running) != loadPods {
		t.Errorf("%d containers running after %d pods were started", len(running), loadPods)
	}
	if n := len(conmons(d)); n != loadPods {
		t.Errorf("%d conmon processes for %d containers", n, loadPods)
	}
	remove = each(func(ctx context.Context, p *pod) error {
		if err := timed("StopContainer", func() error {
			_, err := d.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: p.ctr, Timeout: 30})
			return err
		}); err != nil {
			return err
		}
		if err := timed("RemoveContainer", func() error {
			_, err := d.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: p.ctr})
			return err
		}); err != nil {
			return err
		}
		if err := timed("StopPodSandbox", func() error {
			_, err := d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.id})
			return err
		}); err != nil {
			return err
		}
		return timed("RemovePodSandbox", func() error {
			_, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.id})
			return err
		})
	})
	for _, e := range errs {
		t.Error(e)
	}
	if ids := podIDs(t, d, nil); len(ids) > 0 {
		t.Errorf("%d pods listed after all were removed", len(ids))
	}
	// Mounts, processes, runc state, cgroups, veths and leases.
	for _, l := range d.Reset() {
		t.Errorf("after round %s: %s", round, l)
	}
	return create, remove, calls
}

// TestLoad runs 100 pods with one container each from 10 concurrent clients
// and removes them all, twice: alone, then with kubelet's polling running
// beside it. Every call succeeds, nothing is left, and berthd's file
// descriptors and goroutines come back to their idle counts. Times and
// list latencies are logged (docs/PERFORMANCE.md), not asserted: the
// machine may be shared.
func TestLoad(t *testing.T) {
	port := freeHostPort(t)
	d := framework.StartDaemon(t, framework.Options{Config: fmt.Sprintf("[metrics]\naddress = \"127.0.0.1:%d\"\n", port)})
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)

	// Warm up: one pod through its whole life, and a stats call, so that
	// what berthd starts lazily (the CNI bridge, the disk usage refresher
	// of the stats) is there before the idle counts are taken.
	pod := d.PodConfig(t, "warmup")
	id := d.RunPod(t, pod)
	d.RunContainer(t, id, pod, framework.ContainerConfig("app", "sleep", "3600"))
	if _, err := d.Runtime.ListContainerStats(framework.Ctx(t), &runtimeapi.ListContainerStatsRequest{}); err != nil {
		t.Fatal(err)
	}
	for _, l := range d.Reset() {
		t.Error(l)
	}
	time.Sleep(time.Second)
	idle := readGauges(t, d, metricsURL)
	t.Logf("idle: %d fds, %d goroutines", idle.fds, idle.goroutines)

	logRound := func(round string, create, remove time.Duration, calls map[string]*latencies) {
		t.Logf("%s: %d pods started in %v (%.1f pods/s), stopped and removed in %v (%.1f pods/s)", round,
			loadPods, create.Round(time.Millisecond), loadPods/create.Seconds(), remove.Round(time.Millisecond), loadPods/remove.Seconds())
		for _, m := range []string{"RunPodSandbox", "CreateContainer", "StartContainer", "StopContainer", "RemoveContainer", "StopPodSandbox", "RemovePodSandbox"} {
			t.Logf("%s:   %-16s %v", round, m, calls[m])
		}
	}
	create, remove, calls := loadRound(t, d, "alone")
	logRound("alone", create, remove, calls)
	g := waitIdle(t, d, metricsURL, idle)
	t.Logf("after round alone: %d fds, %d goroutines", g.fds, g.goroutines)

	p := startPoller(d)
	create, remove, calls = loadRound(t, d, "polled")
	p.halt()
	for _, err := range p.errs {
		t.Errorf("kubelet poll: %v", err)
	}
	logRound("polled", create, remove, calls)
	t.Logf("polled: ListPodSandbox and ListContainers under load: %v; ListContainerStats: %v", &p.lists, &p.stats)
	g = waitIdle(t, d, metricsURL, idle)
	t.Logf("after round polled: %d fds, %d goroutines", g.fds, g.goroutines)
}
