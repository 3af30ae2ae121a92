package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// restartPods is how many one-container pods TestRestartManyContainers
// runs across the restart.
const restartPods = 100

// TestRestartManyContainers kills berthd with SIGKILL while 100 pods with a
// running container each are up, starts it again and times it to ready
// (CRI Version and Status answering). Nothing may have restarted: every
// container is still RUNNING with its start time, init process and conmon,
// and every pod READY.
func TestRestartManyContainers(t *testing.T) {
	d := framework.StartDaemon(t, framework.Options{})
	type pod struct {
		cfg     *runtimeapi.PodSandboxConfig
		id, ctr string
	}
	pods := make([]*pod, restartPods)
	for i := range pods {
		pods[i] = &pod{cfg: d.PodConfig(t, fmt.Sprintf("restart-%03d", i))}
	}
	ctr := framework.ContainerConfig("app", "sleep", "3600")
	var mu sync.Mutex
	var errs []string
	var wg sync.WaitGroup
	start := time.Now()
	for c := range loadClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < len(pods); i += loadClients {
				if err := startOnePod(d, pods[i].cfg, ctr, &pods[i].id, &pods[i].ctr); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("%s: %v", pods[i].cfg.Metadata.Name, err))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for _, e := range errs {
		t.Error(e)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d pods started in %v", restartPods, time.Since(start).Round(time.Millisecond))

	startedAt := map[string]int64{}
	for _, p := range pods {
		st := d.WaitForState(t, p.ctr, runtimeapi.ContainerState_CONTAINER_RUNNING, 10*time.Second)
		startedAt[p.ctr] = st.StartedAt
	}
	inits := map[string][]int{}
	for _, p := range pods {
		inits[p.id] = initPIDs(t, p.cfg)
		if len(inits[p.id]) != 1 {
			t.Fatalf("pod %s: want one container init process, got %v", p.id, inits[p.id])
		}
	}
	monitors := conmons(d)
	sort.Strings(monitors)
	if len(monitors) != restartPods {
		t.Fatalf("%d conmon processes for %d containers", len(monitors), restartPods)
	}

	d.Kill9(t)
	// The killed daemon's socket stays behind. berthd removes it at start,
	// but a client that finds it first gets refused and backs off (gRPC
	// waits a second before it dials again), which is not berthd's time.
	if err := os.Remove(d.Socket); err != nil {
		t.Fatal(err)
	}
	restartStart := time.Now()
	d.Restart(t) // returns once Version answers
	if _, err := d.Runtime.Status(framework.Ctx(t), &runtimeapi.StatusRequest{}); err != nil {
		t.Fatalf("Status after restart: %v", err)
	}
	took := time.Since(restartStart)
	t.Logf("berthd restart with %d running containers: ready (Version and Status answering) in %v", restartPods, took.Round(time.Millisecond))
	// berthd's own account of its start, for where the time went.
	if data, err := os.ReadFile(d.LogPath); err == nil {
		log := string(data)
		log = log[strings.LastIndex(log, "=== e2e: starting"):]
		if i := strings.Index(log, "serving CRI"); i > 0 {
			log = log[:i]
		}
		for _, line := range strings.Split(log, "\n") {
			if !strings.Contains(line, "level=DEBUG") {
				t.Log(line)
			}
		}
	}
	// The time is a figure for docs/PERFORMANCE.md (target: under 2 s),
	// not an assertion: times on shared machines move 2x from day to day.

	resp, err := d.Runtime.ListContainers(framework.Ctx(t), &runtimeapi.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Containers) != restartPods {
		t.Errorf("%d containers listed after restart, want %d", len(resp.Containers), restartPods)
	}
	for _, p := range pods {
		st := d.ContainerStatus(t, p.ctr)
		if st.State != runtimeapi.ContainerState_CONTAINER_RUNNING || st.StartedAt != startedAt[p.ctr] {
			t.Errorf("container %s after restart: %v started at %d, want RUNNING started at %d", p.ctr, st.State, st.StartedAt, startedAt[p.ctr])
		}
		if ps := d.PodStatus(t, p.id); ps.State != runtimeapi.PodSandboxState_SANDBOX_READY {
			t.Errorf("pod %s after restart: %v, want READY", p.id, ps.State)
		}
		if got := initPIDs(t, p.cfg); !slices.Equal(got, inits[p.id]) {
			t.Errorf("pod %s: container init process %v after restart, want the same %v", p.id, got, inits[p.id])
		}
	}
	after := conmons(d)
	sort.Strings(after)
	if !slices.Equal(after, monitors) {
		t.Errorf("conmon processes changed across the restart: %d before, %d after", len(monitors), len(after))
	}
}

// startOnePod runs a pod with one container from a goroutine (no t.Fatal).
func startOnePod(d *framework.Daemon, cfg *runtimeapi.PodSandboxConfig, ctr *runtimeapi.ContainerConfig, podID, ctrID *string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		return fmt.Errorf("RunPodSandbox: %w", err)
	}
	*podID = run.PodSandboxId
	cr, err := d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: *podID, Config: ctr, SandboxConfig: cfg})
	if err != nil {
		return fmt.Errorf("CreateContainer: %w", err)
	}
	*ctrID = cr.ContainerId
	if _, err := d.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: *ctrID}); err != nil {
		return fmt.Errorf("StartContainer: %w", err)
	}
	return nil
}
