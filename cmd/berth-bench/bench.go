package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Counts are the sizes of the fixed workloads.
type Counts struct {
	Pods           int `json:"pods"`            // sequential pods per shape
	ConcurrentPods int `json:"concurrent_pods"` // pods started by Clients at once
	Clients        int `json:"clients"`
	Execs          int `json:"execs"`
	Lists          int `json:"lists"` // calls of each list RPC with ConcurrentPods running
	Pulls          int `json:"pulls"`
	FloorRuns      int `json:"floor_runs"`
	// PairedFloor: each sequential pod is followed by one floor run,
	// recorded beside it (pairedFloorStep), so that the two sample the
	// machine at the same moments.
	PairedFloor bool          `json:"paired_floor"`
	CLIRuns     int           `json:"cli_runs"`
	Settle      time.Duration `json:"settle_ns"` // wait before reading memory with the pods running
}

// Throughput of the concurrent workload.
type Throughput struct {
	Pods           int     `json:"pods"`
	Clients        int     `json:"clients"`
	StartSeconds   float64 `json:"start_seconds"`
	StartPerSecond float64 `json:"start_pods_per_second"`
	StopSeconds    float64 `json:"stop_remove_seconds"`
	StopPerSecond  float64 `json:"stop_remove_pods_per_second"`
}

// TargetResult is everything measured on one endpoint.
type TargetResult struct {
	Name        string        `json:"name"`
	Endpoint    string        `json:"endpoint"`
	Runtime     string        `json:"runtime"`
	PID         int           `json:"pid"`
	Steps       []StepResult  `json:"steps"`
	ServerSteps []ServerStep  `json:"server_steps,omitempty"`
	Throughput  *Throughput   `json:"throughput,omitempty"`
	IdleMemory  *Memory       `json:"daemon_idle,omitempty"`
	BusyMemory  *Memory       `json:"daemon_with_pods,omitempty"`
	Helpers     *HelperMemory `json:"helpers,omitempty"`
	ImageRef    string        `json:"image_ref"`
	Errors      []string      `json:"errors,omitempty"`
	CleanupErrs []string      `json:"cleanup_errors,omitempty"`
}

// runner drives one target.
type runner struct {
	spec   TargetSpec
	opts   *runOptions
	c      *client
	shaper *shaper
	rec    *recorder
	res    *TargetResult
	failed bool // setup failed: skip the workloads
	// floor, when set, is run once after each sequential pod (PairedFloor).
	floor *floor
}

// pairedFloorStep names the floor runs made between sequential pods.
const pairedFloorStep = "paired floor: runc run --detach"

func (r *runner) fail(workload string, err error) {
	msg := fmt.Sprintf("%s: %v", workload, err)
	slog.Error("workload failed", "target", r.spec.Name, "workload", workload, "err", err)
	r.res.Errors = append(r.res.Errors, msg)
}

// call bounds one RPC: long enough for a slow create under load, short
// enough that a hung runtime does not hang the bench.
func call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 2*time.Minute)
}

func (r *runner) setup(ctx context.Context) error {
	c, err := dial(r.spec.Endpoint)
	if err != nil {
		return err
	}
	r.c = c
	cctx, cancel := call(ctx)
	defer cancel()
	v, err := c.version(cctx)
	if err != nil {
		return fmt.Errorf("Version: %w", err)
	}
	r.res.Runtime = v
	r.res.PID = r.spec.PID
	if r.res.PID == 0 {
		if r.res.PID, err = listenerPID(r.spec.SocketPath()); err != nil {
			slog.Warn("daemon process not found: no daemon memory figures", "target", r.spec.Name, "err", err)
		}
	}
	systemd := false
	if rc, err := c.runtime.RuntimeConfig(cctx, &runtimeapi.RuntimeConfigRequest{}); err == nil {
		systemd = rc.GetLinux().GetCgroupDriver() == runtimeapi.CgroupDriver_SYSTEMD
	}
	dir := filepath.Join(r.opts.workDir, r.spec.Name)
	parent := "/berth-bench-" + r.opts.runID + "-" + sanitize(r.spec.Name)
	if systemd {
		parent = "berthbench" + r.opts.runID
	}
	r.shaper = &shaper{runID: r.opts.runID, workDir: dir, cgroupParent: parent, systemd: systemd, userImage: r.opts.image}
	// The image is present before any pod starts, as for a pod on a node
	// that has run it before.
	ref, err := r.ensureImage(ctx, r.opts.image)
	if err != nil {
		return err
	}
	r.shaper.imageRef, r.res.ImageRef = ref, ref
	return nil
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			b[i] = '-'
		}
	}
	return string(b)
}

// ensureImage returns the image id of ref, pulling it if absent.
func (r *runner) ensureImage(ctx context.Context, ref string) (string, error) {
	cctx, cancel := call(ctx)
	defer cancel()
	st, err := r.c.image.ImageStatus(cctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		return "", fmt.Errorf("ImageStatus %s: %w", ref, err)
	}
	if st.GetImage() != nil {
		return st.Image.Id, nil
	}
	if _, err := r.c.image.PullImage(cctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		return "", fmt.Errorf("PullImage %s: %w", ref, err)
	}
	st, err = r.c.image.ImageStatus(cctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil || st.GetImage() == nil {
		return "", fmt.Errorf("ImageStatus %s after pulling it: %v", ref, err)
	}
	return st.Image.Id, nil
}

type pod struct {
	id, ctr string
}

// startPod is what kubelet does for a one-container pod whose image is
// present: RunPodSandbox, CreateContainer, StartContainer. Each call is
// recorded under prefix, and the three together as "pod start".
func (r *runner) startPod(ctx context.Context, c *client, rec *recorder, prefix, name string, shape Shape) (pod, error) {
	var p pod
	cfg, files, err := r.shaper.pod(name, shape)
	if err != nil {
		return p, err
	}
	t0 := time.Now()
	err = rec.time(prefix+"RunPodSandbox", func() error {
		cctx, cancel := call(ctx)
		defer cancel()
		resp, err := c.runtime.RunPodSandbox(cctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
		if err == nil {
			p.id = resp.PodSandboxId
		}
		return err
	})
	if err != nil {
		return p, fmt.Errorf("RunPodSandbox %s: %w", name, err)
	}
	ccfg := r.shaper.container(cfg, files, "sleep", "3600")
	err = rec.time(prefix+"CreateContainer", func() error {
		cctx, cancel := call(ctx)
		defer cancel()
		resp, err := c.runtime.CreateContainer(cctx, &runtimeapi.CreateContainerRequest{PodSandboxId: p.id, Config: ccfg, SandboxConfig: cfg})
		if err == nil {
			p.ctr = resp.ContainerId
		}
		return err
	})
	if err != nil {
		return p, fmt.Errorf("CreateContainer in %s: %w", name, err)
	}
	err = rec.time(prefix+"StartContainer", func() error {
		cctx, cancel := call(ctx)
		defer cancel()
		_, err := c.runtime.StartContainer(cctx, &runtimeapi.StartContainerRequest{ContainerId: p.ctr})
		return err
	})
	if err != nil {
		return p, fmt.Errorf("StartContainer in %s: %w", name, err)
	}
	rec.add(prefix+"pod start (3 calls)", time.Since(t0))
	return p, nil
}

// stopPod is kubelet's teardown with a zero grace period: StopContainer,
// StopPodSandbox, RemoveContainer, RemovePodSandbox. (The container's sleep
// is PID 1 of its namespace and ignores SIGTERM, so a grace period would
// only measure the timeout.)
func (r *runner) stopPod(ctx context.Context, c *client, rec *recorder, prefix string, p pod) error {
	t0 := time.Now()
	steps := []struct {
		name string
		f    func(context.Context) error
	}{
		{"StopContainer", func(ctx context.Context) error {
			_, err := c.runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: p.ctr})
			return err
		}},
		{"StopPodSandbox", func(ctx context.Context) error {
			_, err := c.runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.id})
			return err
		}},
		{"RemoveContainer", func(ctx context.Context) error {
			_, err := c.runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: p.ctr})
			return err
		}},
		{"RemovePodSandbox", func(ctx context.Context) error {
			_, err := c.runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.id})
			return err
		}},
	}
	for _, s := range steps {
		err := rec.time(prefix+s.name, func() error {
			cctx, cancel := call(ctx)
			defer cancel()
			return s.f(cctx)
		})
		if err != nil {
			return fmt.Errorf("%s %s: %w", s.name, p.id, err)
		}
	}
	rec.add(prefix+"stop+remove (4 calls)", time.Since(t0))
	return nil
}

// sequential starts and removes n pods of shape one after the other, after
// one unrecorded warm-up pod (first-use costs: the pause image, page cache,
// cgroup directories).
func (r *runner) sequential(ctx context.Context, shape Shape, n int) error {
	prefix := string(shape) + ": "
	scratch := newRecorder()
	p, err := r.startPod(ctx, r.c, scratch, "", "warmup-"+string(shape), shape)
	if err == nil {
		err = r.stopPod(ctx, r.c, scratch, "", p)
	}
	if err != nil {
		return fmt.Errorf("warm-up pod: %w", err)
	}
	var before stepTotals
	if r.spec.Metrics != "" {
		if before, err = scrapeSteps(ctx, r.spec.Metrics); err != nil {
			return fmt.Errorf("read the runtime's step metrics: %w", err)
		}
		defer func() {
			after, err := scrapeSteps(ctx, r.spec.Metrics)
			if err != nil {
				r.fail(string(shape)+": step metrics", err)
				return
			}
			r.res.ServerSteps = append(r.res.ServerSteps, stepMeans(string(shape), before, after)...)
		}()
	}
	for i := range n {
		p, err := r.startPod(ctx, r.c, r.rec, prefix, fmt.Sprintf("%s-%d", shape, i), shape)
		if err != nil {
			return err
		}
		if err := r.stopPod(ctx, r.c, r.rec, prefix, p); err != nil {
			return err
		}
		if r.floor != nil {
			if err := r.floor.run(r.rec, prefix+pairedFloorStep); err != nil {
				return fmt.Errorf("paired floor: %w", err)
			}
		}
	}
	return nil
}

// cliRuns times `berth run --rm IMAGE true` n times, after an unrecorded
// warm-up: the CLI's whole life, from exec to exit, as a user waits for it.
func (r *runner) cliRuns(ctx context.Context, n int) error {
	if r.spec.CLI == "" {
		return nil
	}
	run := func() error {
		cctx, cancel := call(ctx)
		defer cancel()
		cmd := exec.CommandContext(cctx, r.spec.CLI, "--socket", r.spec.SocketPath(), "run", "--rm", "--pull", "never", r.opts.image, "true")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, out)
		}
		return nil
	}
	if err := run(); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	for range n {
		if err := r.rec.time("berth run --rm IMAGE true (CLI, end to end)", run); err != nil {
			return err
		}
	}
	return nil
}

// execs runs `echo` n times in one running kubelet-shaped pod.
func (r *runner) execs(ctx context.Context, n int) error {
	scratch := newRecorder()
	p, err := r.startPod(ctx, r.c, scratch, "", "exec", Kubelet)
	if err != nil {
		return err
	}
	for range n {
		err := r.rec.time("ExecSync (echo)", func() error {
			cctx, cancel := call(ctx)
			defer cancel()
			resp, err := r.c.runtime.ExecSync(cctx, &runtimeapi.ExecSyncRequest{ContainerId: p.ctr, Cmd: []string{"echo", "bench"}, Timeout: 10})
			if err == nil && (resp.ExitCode != 0 || string(resp.Stdout) != "bench\n") {
				err = fmt.Errorf("exit code %d, stdout %q, stderr %q", resp.ExitCode, resp.Stdout, resp.Stderr)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("ExecSync: %w", err)
		}
	}
	return r.stopPod(ctx, r.c, scratch, "", p)
}

// concurrent starts n kubelet-shaped pods from m clients (one connection
// each, like kubelet's pod workers but without its shared connection), then
// with them running measures the daemon's and helpers' memory and the list
// calls kubelet polls, then stops and removes them from m clients.
func (r *runner) concurrent(ctx context.Context, n, m, lists int, settle time.Duration) error {
	if n == 0 || m == 0 {
		return nil
	}
	// Helpers already running are not this workload's, unless they take
	// a job meanwhile: a runtime's helper started ahead (berthd's spare
	// monitors) then gets a new command line.
	skip := map[int]string{}
	for pid := range matching(r.spec.Helpers, nil) {
		skip[pid] = cmdline(pid)
	}
	clients := make([]*client, m)
	for i := range clients {
		c, err := dial(r.spec.Endpoint)
		if err != nil {
			return err
		}
		defer c.Close()
		clients[i] = c
	}
	prefix := fmt.Sprintf("%d pods by %d clients: ", n, m)
	pods := make([]pod, n)
	run := func(f func(c *client, i int) error) (time.Duration, error) {
		work := make(chan int)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var errs []error
		t0 := time.Now()
		for _, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					if err := f(c, i); err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
				}
			}()
		}
		for i := range n {
			work <- i
		}
		close(work)
		wg.Wait()
		return time.Since(t0), errors.Join(errs...)
	}
	startTime, err := run(func(c *client, i int) error {
		p, err := r.startPod(ctx, c, r.rec, prefix, fmt.Sprintf("load-%d", i), Kubelet)
		pods[i] = p
		return err
	})
	if err != nil {
		return err
	}
	tp := &Throughput{Pods: n, Clients: m, StartSeconds: startTime.Seconds(), StartPerSecond: float64(n) / startTime.Seconds()}
	r.res.Throughput = tp

	// Memory at rest with the pods running: give the daemon's allocator
	// time to return the start burst's garbage, as on a node.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(settle):
	}
	if r.res.PID > 0 {
		if mem, err := readMemory(r.res.PID); err == nil {
			r.res.BusyMemory = &mem
		}
	}
	if r.spec.Helpers != nil {
		h := helperMemory(matching(r.spec.Helpers, skip), n)
		r.res.Helpers = &h
	}
	listPrefix := fmt.Sprintf("with %d pods: ", n)
	for range lists {
		for _, l := range []struct {
			name string
			f    func(context.Context) (int, error)
		}{
			{"ListPodSandbox", func(ctx context.Context) (int, error) {
				resp, err := r.c.runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
				return len(resp.GetItems()), err
			}},
			{"ListContainers", func(ctx context.Context) (int, error) {
				resp, err := r.c.runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
				return len(resp.GetContainers()), err
			}},
			{"ListContainerStats", func(ctx context.Context) (int, error) {
				resp, err := r.c.runtime.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{})
				return len(resp.GetStats()), err
			}},
			{"ListPodSandboxStats", func(ctx context.Context) (int, error) {
				resp, err := r.c.runtime.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{})
				return len(resp.GetStats()), err
			}},
		} {
			err := r.rec.time(listPrefix+l.name, func() error {
				cctx, cancel := call(ctx)
				defer cancel()
				got, err := l.f(cctx)
				if err == nil && got < n {
					err = fmt.Errorf("%d items, want at least %d", got, n)
				}
				return err
			})
			if err != nil {
				return fmt.Errorf("%s: %w", l.name, err)
			}
		}
	}
	stopTime, err := run(func(c *client, i int) error { return r.stopPod(ctx, c, r.rec, prefix, pods[i]) })
	if err != nil {
		return err
	}
	tp.StopSeconds, tp.StopPerSecond = stopTime.Seconds(), float64(n)/stopTime.Seconds()
	return nil
}

// pulls pulls ref n times from its registry, removing it before each pull
// so that every pull downloads and unpacks every layer.
func (r *runner) pulls(ctx context.Context, ref string, n int) error {
	remove := func() {
		cctx, cancel := call(ctx)
		defer cancel()
		_, _ = r.c.image.RemoveImage(cctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	}
	defer remove()
	for range n {
		remove()
		err := r.rec.time("PullImage (cold, loopback registry)", func() error {
			cctx, cancel := call(ctx)
			defer cancel()
			_, err := r.c.image.PullImage(cctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
			return err
		})
		if err != nil {
			return fmt.Errorf("PullImage %s: %w", ref, err)
		}
	}
	return nil
}

// cleanup stops and removes whatever pods of this run are left (after a
// failure or an interrupt), then the cgroups and files the bench made.
func (r *runner) cleanup() {
	if r.c == nil {
		return
	}
	defer r.c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	resp, err := r.c.runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{
		Filter: &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{runLabel: r.opts.runID}},
	})
	if err != nil {
		r.res.CleanupErrs = append(r.res.CleanupErrs, fmt.Sprintf("ListPodSandbox: %v", err))
	}
	for _, p := range resp.GetItems() {
		if _, err := r.c.runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			r.res.CleanupErrs = append(r.res.CleanupErrs, fmt.Sprintf("StopPodSandbox %s: %v", p.Id, err))
		}
		if _, err := r.c.runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			r.res.CleanupErrs = append(r.res.CleanupErrs, fmt.Sprintf("RemovePodSandbox %s: %v", p.Id, err))
		}
	}
	if r.shaper != nil && !r.shaper.systemd {
		for _, err := range removeCgroupTree(r.shaper.cgroupParent) {
			r.res.CleanupErrs = append(r.res.CleanupErrs, err.Error())
		}
	}
	if r.shaper != nil {
		_ = os.RemoveAll(r.shaper.workDir)
	}
}
