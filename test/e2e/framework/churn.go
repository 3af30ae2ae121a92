package framework

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Crash churn: workers drive pods through berthd the way kubelet does while
// the test kills berthd with SIGKILL at random moments, restarts it, and
// checks after every restart that what berthd lists and what the host holds
// agree. See CrashChurn.

// ChurnOptions shapes a CrashChurn run.
type ChurnOptions struct {
	// Workers is the number of concurrent kubelet-like workers (default 4).
	Workers int
	// KillPoints is how many times berthd is killed (default 8).
	KillPoints int
	// MaxKillDelay bounds the random wait between releasing the workers
	// (a batch of calls starts) and the kill (default 150 ms).
	MaxKillDelay time.Duration
	// PodsPerWorker caps the pods one worker keeps (default 3).
	PodsPerWorker int
	// Seed makes the run's choices repeatable; 0 picks one (logged).
	Seed uint64
	// Images, when above 0, adds an image worker that pulls that many
	// images from a loopback registry and removes them again, and makes
	// every check compare the image store on disk with berthd's records.
	Images int
	// Targets are the RPCs the kill points aim at in turn: the killer
	// waits until a worker is in such a call and kills within it. "" is
	// a kill at a random moment. Default: "", StopPodSandbox,
	// RemovePodSandbox, and with Images PullImage and RemoveImage.
	Targets []string
}

// ChurnResult is what a CrashChurn run saw.
type ChurnResult struct {
	// Violations are the distinct invariant failures seen after restarts
	// and by the workers (a leftover seen at several checks counts once).
	Violations []string
	// Leaks are what was left on the host after every pod was removed
	// through CRI and berthd was stopped.
	Leaks []string
	// Kills is the number of SIGKILLs, Calls the CRI calls the workers
	// made, Retries the calls repeated after a kill, Adopted the retried
	// creates answered AlreadyExists whose object the worker found by
	// listing (as kubelet does).
	Kills, Calls, Retries, Adopted int
	// PodsCreated and PodsRemoved count the workers' completed steps,
	// Pulls and ImageRemovals the image worker's.
	PodsCreated, PodsRemoved, Pulls, ImageRemovals int
	// Aimed counts the kills aimed at each target RPC, Hit those that
	// landed while such a call was in flight (the rest timed out waiting
	// for one, or it finished in the random delay before the kill).
	Aimed, Hit map[string]int
	// Cut counts, per RPC, the calls a kill cut short.
	Cut map[string]int
	// Recovered counts berthd's start-up repairs, from its log: evidence
	// of which windows inside berthd the kills hit.
	Recovered map[string]int
}

// recoveryMessages are the log messages of berthd's start-up repairs.
var recoveryMessages = []string{
	"removing half-created pod left by a crash",
	"removing half-created container left by a crash",
	"pod namespaces are gone; marking pod not ready",
	"container was started before a crash; recorded as running",
	"container already running at start; an earlier start finished it",
	"container lost",
}

// churn is one run's shared state: the daemon generation the workers talk
// to, and what they found.
type churn struct {
	d    *Daemon
	opts ChurnOptions
	logf func(string, ...any)

	mu    sync.Mutex
	cond  *sync.Cond
	up    bool // workers may start calls
	gen   int  // bumped each time berthd is back and checked
	kills int
	rt    runtimeapi.RuntimeServiceClient
	imgc  runtimeapi.ImageServiceClient
	seen  map[string]bool
	// inflight counts the calls under way per RPC, for aimed kills.
	inflight map[string]int
	res      ChurnResult
	stopped  bool
}

// CrashChurn runs opts.Workers kubelet-like workers against d and kills
// berthd with SIGKILL opts.KillPoints times, each a random 0-MaxKillDelay
// after the workers were released, so that kills land in every phase of
// pod and container create, start, stop and remove. After each restart (and
// berthd's own start-up reconcile) it checks, while the workers wait:
//
//   - no two pods with the same metadata (name, namespace, uid, attempt) and
//     no two containers with the same (pod, name, attempt) are listed;
//   - every listed container's pod is listed;
//   - a READY pod has its namespace pins and shm mounted, a NOTREADY pod none;
//   - a RUNNING container's process (pid from verbose status) is alive and
//     so is its conmon; a CREATED container has its conmon;
//   - nothing on the host lacks a record: runc state, conmon processes,
//     mounts, cgroups, sandbox/container/exit dirs, CNI leases and cached
//     results, veths.
//
// Workers retry a call that failed because berthd died with the same
// arguments once it is back, as kubelet keeps a create's attempt number
// until it learns the result. A retried create that completed before the
// kill gets AlreadyExists (berthd cannot know the result was lost, so a
// restored name counts as delivered): the worker then lists, finds the
// object with its metadata and uses it, which is what kubelet's relist
// does. At the end every pod is removed through CRI, berthd is stopped and
// the leak check runs; d is left stopped (StartDaemon's cleanup brings it
// back for its own check).
func (d *Daemon) CrashChurn(t testing.TB, opts ChurnOptions) ChurnResult {
	t.Helper()
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.KillPoints <= 0 {
		opts.KillPoints = 8
	}
	if opts.MaxKillDelay <= 0 {
		opts.MaxKillDelay = 150 * time.Millisecond
	}
	if opts.PodsPerWorker <= 0 {
		opts.PodsPerWorker = 3
	}
	if opts.Seed == 0 {
		opts.Seed = rand.Uint64()
	}
	t.Logf("crash churn: %d workers, %d kill points, seed %d", opts.Workers, opts.KillPoints, opts.Seed)
	if opts.Targets == nil {
		opts.Targets = []string{"", "StopPodSandbox", "RemovePodSandbox"}
		if opts.Images > 0 {
			opts.Targets = append(opts.Targets, "PullImage", "RemoveImage")
		}
	}
	var refs []string
	if opts.Images > 0 {
		refs = churnImages(t, opts.Images)
	}
	c := &churn{d: d, opts: opts, logf: t.Logf, seen: map[string]bool{}, rt: d.Runtime, imgc: d.Image, up: true,
		inflight: map[string]int{}, res: ChurnResult{Cut: map[string]int{}, Aimed: map[string]int{}, Hit: map[string]int{}}}
	c.cond = sync.NewCond(&c.mu)
	iptBefore := d.iptablesLines()
	rng := rand.New(rand.NewPCG(opts.Seed, 0))

	var wg sync.WaitGroup
	workers := make([]*churnWorker, opts.Workers)
	for i := range workers {
		w := &churnWorker{c: c, n: i, rng: rand.New(rand.NewPCG(opts.Seed, uint64(i+1))), t: t, uids: map[string]bool{}}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run()
		}()
	}
	var iw *imageWorker
	if len(refs) > 0 {
		iw = &imageWorker{c: c, rng: rand.New(rand.NewPCG(opts.Seed, uint64(opts.Workers+1))), refs: refs, have: map[string]bool{}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			iw.run()
		}()
	}
	for k := 0; k < opts.KillPoints; k++ {
		c.killAt(rng, opts.Targets[k%len(opts.Targets)])
		d.Kill9(t)
		c.restart(t)
		c.check(t)
		c.mu.Lock()
		c.rt, c.imgc = d.Runtime, d.Image
		c.gen++
		c.up = true
		if k == opts.KillPoints-1 {
			c.stopped = true // workers finish the step they are in and stop
		}
		c.cond.Broadcast()
		c.mu.Unlock()
	}
	wg.Wait()
	if iw != nil {
		// Removing every image must leave only busybox's in the store.
		iw.removeAll()
	}
	c.check(t)

	// The end: everything removed through CRI, berthd stopped, then no
	// trace may be left.
	var leaks []string
	leaks = append(leaks, d.removeAllPods()...)
	if err := d.signal(sigterm, 15*time.Second); err != nil {
		leaks = append(leaks, err.Error())
	}
	leaks = append(leaks, d.checkLeaks(false)...)
	leaks = append(leaks, d.dirLeaks()...)
	if after := d.iptablesLines(); len(after) > len(iptBefore) {
		leaks = append(leaks, fmt.Sprintf("iptables rules naming the pod network grew from %d to %d: %q", len(iptBefore), len(after), after))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.res.Leaks = leaks
	c.res.Recovered = map[string]int{}
	if log, err := os.ReadFile(d.LogPath); err == nil {
		if len(c.res.Violations)+len(leaks) > 0 {
			// The daemon's dir goes with the test: keep its log to read.
			keep := filepath.Join(os.TempDir(), fmt.Sprintf("berth-crash-churn-%d.log", opts.Seed))
			if os.WriteFile(keep, log, 0o644) == nil {
				t.Logf("berthd's log is kept at %s", keep)
			}
		}
		for _, m := range recoveryMessages {
			if n := bytes.Count(log, []byte(`msg="`+m+`"`)); n > 0 {
				c.res.Recovered[m] = n
			}
		}
	}
	sort.Strings(c.res.Violations)
	return c.res
}

// aimDelay bounds the random wait between seeing a call of the target RPC
// in flight and the kill: about the call's own length on an idle node, so
// kills spread over it.
var aimDelay = map[string]time.Duration{
	"StopPodSandbox":   150 * time.Millisecond,
	"RemovePodSandbox": 10 * time.Millisecond,
	"PullImage":        100 * time.Millisecond,
	"RemoveImage":      5 * time.Millisecond,
}

// killAt waits for the moment to kill: a random delay, or, for a target
// RPC, until a call of it is in flight (10 s at most) and a random part of
// its usual length. It stops the workers from starting calls; the caller
// kills.
func (c *churn) killAt(rng *rand.Rand, target string) {
	if target == "" {
		time.Sleep(time.Duration(rng.Int64N(int64(c.opts.MaxKillDelay) + 1)))
	} else {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			c.mu.Lock()
			n := c.inflight[target]
			c.mu.Unlock()
			if n > 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(aimDelay[target]) + 1)))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if target != "" {
		c.res.Aimed[target]++
		if c.inflight[target] > 0 {
			c.res.Hit[target]++
		}
	}
	c.up = false
	c.kills++
	c.res.Kills++
}

// Log writes the result's figures to t, the same way for the e2e test and
// the benchmark.
func (r ChurnResult) Log(t testing.TB) {
	t.Helper()
	t.Logf("kills %d, calls %d, retries %d, adopted %d, pods created %d, removed %d, images pulled %d, removed %d",
		r.Kills, r.Calls, r.Retries, r.Adopted, r.PodsCreated, r.PodsRemoved, r.Pulls, r.ImageRemovals)
	t.Logf("kills aimed at an RPC %v, landed while one was in flight %v", r.Aimed, r.Hit)
	t.Logf("calls cut by a kill: %v", r.Cut)
	t.Logf("berthd start-up repairs: %v", r.Recovered)
}

// restart starts berthd again after a kill. A start that fails is a
// violation (kubelet's node would be without a runtime); it is retried a few
// times so that the run can go on, with what holds the socket logged.
func (c *churn) restart(t testing.TB) {
	t.Helper()
	for try := 0; ; try++ {
		err := c.d.start()
		if err == nil {
			return
		}
		out, _ := exec.Command("ss", "-xlpn", "src", c.d.Socket).CombinedOutput()
		c.violation("restart "+strconv.Itoa(c.kills), fmt.Sprintf("restart after kill %d failed: %v (listeners on the socket: %s)", c.kills, err, bytes.TrimSpace(out)))
		if try == 4 {
			t.Fatalf("berthd does not start again after kill %d: %v\n%s", c.kills, err, c.d.logTail(c.d.logSize()-8<<10))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// violation records msg once per run; key identifies it across checks.
func (c *churn) violation(key, msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen[key] {
		return
	}
	c.seen[key] = true
	c.res.Violations = append(c.res.Violations, msg)
	c.logf("VIOLATION: %s", msg)
}

func (c *churn) count(f func(r *ChurnResult)) {
	c.mu.Lock()
	f(&c.res)
	c.mu.Unlock()
}

// client waits until workers may call berthd and returns its client, the
// generation and the kill count at that moment.
func (c *churn) client() (runtimeapi.RuntimeServiceClient, int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.up {
		c.cond.Wait()
	}
	return c.rt, c.gen, c.kills
}

// waitBack blocks until berthd is back (and checked) after generation gen.
func (c *churn) waitBack(gen int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.up || c.gen <= gen {
		c.cond.Wait()
	}
}

func (c *churn) killsNow() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kills
}

func (c *churn) stopping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopped
}

// errCrashed says a call failed because berthd was killed under it; the
// caller decides how to resume (retry or ask for the state).
var errCrashed = errors.New("berthd was killed during the call")

// once makes one call; a failure caused by a kill becomes errCrashed after
// berthd is back.
func (c *churn) once(name string, fn func(ctx context.Context, rt runtimeapi.RuntimeServiceClient) error) error {
	return c.onceBoth(name, func(ctx context.Context, rt runtimeapi.RuntimeServiceClient, _ runtimeapi.ImageServiceClient) error {
		return fn(ctx, rt)
	})
}

func (c *churn) onceBoth(name string, fn func(ctx context.Context, rt runtimeapi.RuntimeServiceClient, is runtimeapi.ImageServiceClient) error) error {
	c.mu.Lock()
	for !c.up {
		c.cond.Wait()
	}
	rt, is, gen, kills := c.rt, c.imgc, c.gen, c.kills
	c.inflight[name]++
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	err := fn(ctx, rt, is)
	cancel()
	c.mu.Lock()
	c.inflight[name]--
	c.mu.Unlock()
	c.count(func(r *ChurnResult) { r.Calls++ })
	if err == nil {
		return nil
	}
	code := status.Code(err)
	if code == codes.Unavailable || code == codes.Canceled || c.killsNow() != kills {
		c.count(func(r *ChurnResult) { r.Cut[name]++ })
		c.waitBack(gen)
		return errCrashed
	}
	return err
}

// call makes a call and, when a kill cut it short, repeats it unchanged
// once berthd is back.
func (c *churn) call(name string, fn func(ctx context.Context, rt runtimeapi.RuntimeServiceClient) error) error {
	for {
		err := c.once(name, fn)
		if !errors.Is(err, errCrashed) {
			return err
		}
		c.count(func(r *ChurnResult) { r.Retries++ })
	}
}

// callImage is call for the image service.
func (c *churn) callImage(name string, fn func(ctx context.Context, is runtimeapi.ImageServiceClient) error) error {
	for {
		err := c.onceBoth(name, func(ctx context.Context, _ runtimeapi.RuntimeServiceClient, is runtimeapi.ImageServiceClient) error {
			return fn(ctx, is)
		})
		if !errors.Is(err, errCrashed) {
			return err
		}
		c.count(func(r *ChurnResult) { r.Retries++ })
	}
}

// churnPod is a worker's view of one pod, as kubelet keeps it.
type churnPod struct {
	cfg     *runtimeapi.PodSandboxConfig
	id      string
	ctr     *runtimeapi.ContainerConfig
	ctrID   string
	ctrName string
}

type churnWorker struct {
	c    *churn
	n    int
	t    testing.TB
	rng  *rand.Rand
	pods []*churnPod
	uids map[string]bool // every pod uid this worker made; false once removed
	seq  int
}

func (w *churnWorker) violation(key, format string, args ...any) {
	w.c.violation(key, fmt.Sprintf("worker %d: ", w.n)+fmt.Sprintf(format, args...))
}

func (w *churnWorker) run() {
	for !w.c.stopping() {
		_, gen, _ := w.c.client()
		switch r := w.rng.IntN(10); {
		case len(w.pods) < 2 || (len(w.pods) < w.c.opts.PodsPerWorker && r < 4):
			w.createPod()
		case r < 7:
			w.removePod(w.rng.IntN(len(w.pods)))
		default:
			w.restartContainer(w.pods[w.rng.IntN(len(w.pods))])
		}
		// After a kill, relist like kubelet and compare with what this
		// worker believes.
		if _, now, _ := w.c.client(); now != gen {
			w.audit()
		}
	}
}

func (w *churnWorker) newPodConfig(attempt uint32, prev *runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig {
	if prev != nil {
		cfg := cloneProto(prev)
		cfg.Metadata.Attempt = attempt
		return cfg
	}
	w.seq++
	cfg := w.c.d.PodConfig(w.t, fmt.Sprintf("churn-w%d-%d", w.n, w.seq))
	if w.n%2 == 1 {
		// Half the workers' pods share a PID namespace: berthd's own pause
		// process, started at the create or prepared ahead.
		cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	}
	w.uids[cfg.Metadata.Uid] = true
	return cfg
}

func ctrConfig(pod *runtimeapi.PodSandboxConfig, attempt uint32) *runtimeapi.ContainerConfig {
	cfg := ContainerConfig("app", "sleep", "3600")
	cfg.Linux.SecurityContext.NamespaceOptions.Pid = pod.Linux.SecurityContext.NamespaceOptions.Pid
	cfg.Metadata.Attempt = attempt
	cfg.LogPath = fmt.Sprintf("app/%d.log", attempt)
	cfg.Annotations["io.kubernetes.container.restartCount"] = strconv.Itoa(int(attempt))
	_ = os.MkdirAll(filepath.Join(pod.LogDirectory, "app"), 0o755)
	return cfg
}

// createPod is kubelet's SyncPod for a new pod: sandbox, container, start.
func (w *churnWorker) createPod() {
	p := &churnPod{cfg: w.newPodConfig(0, nil)}
	if !w.runSandbox(p) {
		return
	}
	w.pods = append(w.pods, p)
	w.c.count(func(r *ChurnResult) { r.PodsCreated++ })
	w.startContainer(p, 0)
}

// runSandbox runs p.cfg; false when the worker gave up on the pod.
func (w *churnWorker) runSandbox(p *churnPod) bool {
	for {
		var id string
		err := w.c.call("RunPodSandbox", func(ctx context.Context, rt runtimeapi.RuntimeServiceClient) error {
			resp, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: p.cfg})
			if err == nil {
				id = resp.PodSandboxId
			}
			return err
		})
		if status.Code(err) == codes.AlreadyExists {
			// A retry of a create that finished before the kill: the
			// result was lost with the connection. Relist, as kubelet.
			found := w.findPods(p.cfg.Metadata)
			if len(found) != 1 {
				w.violation("adopt-pod "+podKey(p.cfg.Metadata), "RunPodSandbox %s: AlreadyExists, but %d pods with that metadata are listed", podKey(p.cfg.Metadata), len(found))
				return false
			}
			w.c.count(func(r *ChurnResult) { r.Adopted++ })
			id = found[0].Id
			if found[0].State != runtimeapi.PodSandboxState_SANDBOX_READY {
				w.violation("adopt-notready "+id, "pod %s (%s), created before a kill, is NOT_READY after restart", id, podKey(p.cfg.Metadata))
				w.gc(id)
				p.cfg = w.newPodConfig(p.cfg.Metadata.Attempt+1, p.cfg)
				continue
			}
			err = nil
		}
		if err != nil {
			w.violation("run "+podKey(p.cfg.Metadata), "RunPodSandbox %s: %v", podKey(p.cfg.Metadata), err)
			return false
		}
		p.id = id
		return true
	}
}

// startContainer creates and starts the pod's container with attempt.
func (w *churnWorker) startContainer(p *churnPod, attempt uint32) {
	cfg := ctrConfig(p.cfg, attempt)
	var id string
	err := w.c.call("CreateContainer", func(ctx context.Context, rt runtimeapi.RuntimeServiceClient) error {
		resp, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: p.id, Config: cfg, SandboxConfig: p.cfg})
		if err == nil {
			id = resp.ContainerId
		}
		return err
	})
	if status.Code(err) == codes.AlreadyExists {
		found := w.findContainers(p.id, cfg.Metadata)
		if len(found) != 1 {
			w.violation("adopt-ctr "+p.id+cfg.Metadata.Name, "CreateContainer %s/%s/%d: AlreadyExists, but %d such containers are listed", p.id, cfg.Metadata.Name, attempt, len(found))
			return
		}
		w.c.count(func(r *ChurnResult) { r.Adopted++ })
		id, err = found[0].Id, nil
	}
	if err != nil {
		w.violation("create "+p.id, "CreateContainer in pod %s (attempt %d): %v", p.id, attempt, err)
		return
	}
	p.ctr, p.ctrID = cfg, id
	for {
		err := w.c.once("StartContainer", func(ctx context.Context, rt runtimeapi.RuntimeServiceClient) error {
			_, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id})
			return err
		})
		if errors.Is(err, errCrashed) {
			// Did the start happen? Ask, as kubelet learns it from status.
			w.c.count(func(r *ChurnResult) { r.Retries++ })
			st := w.status(id)
			switch st.GetState() {
			case runtimeapi.ContainerState_CONTAINER_RUNNING:
				return
			case runtimeapi.ContainerState_CONTAINER_CREATED:
				continue
			default:
				w.violation("start-lost "+id, "container %s: StartContainer cut by a kill, then status %v (%s: %s)", id, st.GetState(), st.GetReason(), st.GetMessage())
				return
			}
		}
		if err != nil {
			st := w.status(id)
			w.violation("start "+id, "StartContainer %s: %v (status now %v)", id, err, st.GetState())
		}
		return
	}
}

func (w *churnWorker) status(id string) *runtimeapi.ContainerStatus {
	var st *runtimeapi.ContainerStatus
	err := w.c.call("ContainerStatus", func(ctx context.Context, rt runtimeapi.RuntimeServiceClient) error {
		resp, err := rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
		if err == nil {
			st = resp.Status
		}
		return err
	})
	if err != nil && status.Code(err) != codes.NotFound {
		w.violation("status "+id, "ContainerStatus %s: %v", id, err)
	}
	return st
}

// removePod is kubelet's pod deletion: stop container, stop pod, remove
// container, remove pod.
func (w *churnWorker) removePod(i int) {
	p := w.pods[i]
	w.pods = append(w.pods[:i], w.pods[i+1:]...)
	w.uids[p.cfg.Metadata.Uid] = false
	if p.ctrID != "" {
		w.stopCtr(p.ctrID)
	}
	w.simple("StopPodSandbox "+p.id, func(ctx context.Context, rt runtimeapi.RuntimeServiceClient) error {
		_, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.id})
		return err
	})
	if p.ctrID != "" {
		w.removeCtr(p.ctrID)
	}
	w.simple("RemovePodSandbox "+p.id, func(ctx context.Context, rt runtimeapi.RuntimeServiceClient) error {
		_, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.id})
		return err
	})
	w.c.count(func(r *ChurnResult) { r.PodsRemoved++ })
}

// restartContainer is kubelet restarting a container: stop it, create and
// start the next attempt, then garbage-collect the dead one.
func (w *churnWorker) restartContainer(p *churnPod) {
	old := p.ctrID
	attempt := uint32(0)
	if p.ctr != nil {
		attempt = p.ctr.Metadata.Attempt + 1
	}
	if old != "" {
		w.stopCtr(old)
	}
	p.ctrID = ""
	w.startContainer(p, attempt)
	if old != "" {
		w.removeCtr(old)
	}
}

func (w *churnWorker) stopCtr(id string) {
	w.simple("StopContainer "+id, func(ctx context.Context, rt runtimeapi.RuntimeServiceClient) error {
		_, err := rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 0})
		return err
	})
}

func (w *churnWorker) removeCtr(id string) {
	w.simple("RemoveContainer "+id, func(ctx context.Context, rt runtimeapi.RuntimeServiceClient) error {
		_, err := rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id})
		return err
	})
}

// simple makes an idempotent call, retried after kills; any error is a
// violation (CRI's stop and remove succeed for what is already gone).
func (w *churnWorker) simple(what string, fn func(ctx context.Context, rt runtimeapi.RuntimeServiceClient) error) {
	if err := w.c.call(strings.Fields(what)[0], fn); err != nil {
		w.violation(what, "%s: %v", what, err)
	}
}

// gc stops and removes a pod kubelet no longer wants.
func (w *churnWorker) gc(id string) {
	w.simple("StopPodSandbox "+id, func(ctx context.Context, rt runtimeapi.RuntimeServiceClient) error {
		_, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
		return err
	})
	w.simple("RemovePodSandbox "+id, func(ctx context.Context, rt runtimeapi.RuntimeServiceClient) error {
		_, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
		return err
	})
}

func (w *churnWorker) findPods(md *runtimeapi.PodSandboxMetadata) []*runtimeapi.PodSandbox {
	var out []*runtimeapi.PodSandbox
	_ = w.c.call("ListPodSandbox", func(ctx context.Context, rt runtimeapi.RuntimeServiceClient) error {
		resp, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
			LabelSelector: map[string]string{"io.kubernetes.pod.uid": md.Uid}}})
		if err != nil {
			return err
		}
		out = out[:0]
		for _, p := range resp.Items {
			if podKey(p.Metadata) == podKey(md) {
				out = append(out, p)
			}
		}
		return nil
	})
	return out
}

func (w *churnWorker) findContainers(podID string, md *runtimeapi.ContainerMetadata) []*runtimeapi.Container {
	var out []*runtimeapi.Container
	_ = w.c.call("ListContainers", func(ctx context.Context, rt runtimeapi.RuntimeServiceClient) error {
		resp, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: podID}})
		if err != nil {
			return err
		}
		out = out[:0]
		for _, c := range resp.Containers {
			if c.Metadata.GetName() == md.Name && c.Metadata.GetAttempt() == md.Attempt {
				out = append(out, c)
			}
		}
		return nil
	})
	return out
}

// audit relists (kubelet's PLEG after a runtime restart) and compares with
// the worker's view: every pod it keeps is listed READY with its running
// container, and nothing else of its pods is listed.
func (w *churnWorker) audit() {
	var pods []*runtimeapi.PodSandbox
	var ctrs []*runtimeapi.Container
	err := w.c.call("List", func(ctx context.Context, rt runtimeapi.RuntimeServiceClient) error {
		pr, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
		if err != nil {
			return err
		}
		cr, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
		if err != nil {
			return err
		}
		pods, ctrs = pr.Items, cr.Containers
		return nil
	})
	if err != nil {
		w.violation("audit-list", "listing after restart: %v", err)
		return
	}
	want := map[string]*churnPod{}
	wantCtr := map[string]bool{}
	for _, p := range w.pods {
		want[p.id] = p
		if p.ctrID != "" {
			wantCtr[p.ctrID] = true
		}
	}
	listed := map[string]bool{}
	for _, p := range pods {
		if _, mine := w.uids[p.Labels["io.kubernetes.pod.uid"]]; !mine {
			continue
		}
		listed[p.Id] = true
		if want[p.Id] == nil {
			w.violation("stray-pod "+p.Id, "pod %s (%s, %v) is listed but the worker never got it or removed it", p.Id, podKey(p.Metadata), p.State)
			w.gc(p.Id)
			continue
		}
		if p.State != runtimeapi.PodSandboxState_SANDBOX_READY {
			w.violation("notready "+p.Id, "pod %s (%s) is NOT_READY though nothing stopped it", p.Id, podKey(p.Metadata))
		}
	}
	for id, p := range want {
		if !listed[id] {
			w.violation("vanished "+id, "pod %s (%s) is no longer listed", id, podKey(p.cfg.Metadata))
		}
	}
	ctrListed := map[string]bool{}
	for _, c := range ctrs {
		if want[c.PodSandboxId] == nil {
			continue
		}
		ctrListed[c.Id] = true
		if !wantCtr[c.Id] {
			w.violation("stray-ctr "+c.Id, "container %s (%s attempt %d) in pod %s is listed but the worker never got it or removed it", c.Id, c.Metadata.GetName(), c.Metadata.GetAttempt(), c.PodSandboxId)
			w.stopCtr(c.Id)
			w.removeCtr(c.Id)
			continue
		}
		if c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			w.violation("notrunning "+c.Id, "container %s is %v, want RUNNING", c.Id, c.State)
		}
	}
	for id := range wantCtr {
		if !ctrListed[id] {
			w.violation("ctr-vanished "+id, "container %s is no longer listed", id)
		}
	}
}

func podKey(md *runtimeapi.PodSandboxMetadata) string {
	return fmt.Sprintf("%s_%s_%s_%d", md.GetName(), md.GetNamespace(), md.GetUid(), md.GetAttempt())
}
