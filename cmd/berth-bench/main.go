// Command berth-bench drives any CRI endpoint (berth, containerd, CRI-O)
// over its socket with the same fixed workloads, as kubelet would, and
// prints p50/p95/p99 per step, throughput and memory, beside a bare
// `runc run` of the same container as the floor. Given several targets it
// runs each workload on each in turn, so that their ratios come from one
// run on one machine. See docs/PERFORMANCE.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "berth-bench:", err)
		os.Exit(1)
	}
}

type runOptions struct {
	targets   []string
	image     string
	pullImage string
	runc      string
	jsonPath  string
	workDir   string
	runID     string
	counts    Counts
	skipFloor bool
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "berth-bench",
		Short:         "benchmark CRI runtimes over their sockets with kubelet-shaped workloads",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newRunCommand(), newImagesCommand())
	return root
}

func newRunCommand() *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run",
		Short: "run the workloads against one or more CRI endpoints and print the figures",
		Long: `Runs, against each --target in turn per workload:
  - N kubelet-shaped pods (PID namespace per container) started and removed one after the other,
  - the same with a PID namespace shared by the pod (CRI's default),
  - ExecSync of echo in a running container,
  - a bare "runc run" of the same busybox sleep (the floor, for all targets at
    once: half its runs before the sequential pods, half after them and the
    execs and CLI runs; each half's figures are printed too; and, with
    --paired-floor, one run after each sequential pod of each target, so that
    pod starts and floor runs sample the machine at the same moments),
  - M clients starting N pods at once (pods/s), the daemon's and helpers' memory
    and ListPodSandbox/ListContainers/ListContainerStats/ListPodSandboxStats with them running,
    then the same clients stopping and removing them,
  - cold pulls of an image of random layers.
The workload image is pulled first if absent. Needs root (it reads other
processes' memory and makes pod cgroups and log directories, as kubelet does).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return run(cmd.Context(), &o) },
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.targets, "target", []string{"name=berth,endpoint=unix:///run/berth/berth.sock,helpers=berth-monitor|conmon|berth-pause"},
		"endpoint to measure, repeatable: name=NAME,endpoint=unix:///PATH[,helpers=REGEXP][,pid=PID]; helpers matches the names of the processes the runtime runs beside each pod or container (conmon; containerd-shim-runc-v2|pause); the daemon is the process listening on the socket unless pid is given")
	f.StringVar(&o.image, "image", upstream+"/"+busyboxRepo, "workload image (busybox with sleep and echo), pulled if absent")
	f.StringVar(&o.pullImage, "pull-image", upstream+"/"+pullRepo, "image the pull step pulls and removes")
	f.StringVar(&o.runc, "runc", "runc", "runc binary for the floor")
	f.StringVar(&o.jsonPath, "json", "", "also write the figures as JSON to this file")
	f.StringVar(&o.workDir, "work-dir", "", "where pod log dirs and kubelet's per-pod files go (default: a new temp dir, removed at the end)")
	f.IntVar(&o.counts.Pods, "pods", 30, "sequential pods per shape")
	f.IntVar(&o.counts.ConcurrentPods, "concurrent-pods", 100, "pods started at once by --clients clients")
	f.IntVar(&o.counts.Clients, "clients", 10, "concurrent clients, each with its own connection")
	f.IntVar(&o.counts.Execs, "execs", 50, "ExecSync calls")
	f.IntVar(&o.counts.Lists, "lists", 20, "calls of each list RPC with --concurrent-pods running")
	f.IntVar(&o.counts.Pulls, "pulls", 5, "cold pulls of --pull-image (0: skip)")
	f.IntVar(&o.counts.FloorRuns, "floor-runs", 30, "bare runc runs for the floor (0: skip)")
	f.BoolVar(&o.counts.PairedFloor, "paired-floor", true, "also run the floor once after each sequential pod, and print each target's pod start against those runs")
	f.IntVar(&o.counts.CLIRuns, "cli-runs", 10, "`berth run --rm IMAGE true` runs, for targets with cli= (0: skip)")
	f.DurationVar(&o.counts.Settle, "settle", 5*time.Second, "wait with the pods running before reading memory")
	return cmd
}

func newImagesCommand() *cobra.Command {
	o := imageOptions{}
	cmd := &cobra.Command{
		Use:   "images",
		Short: "build the bench images and push them to a plain-HTTP registry (e.g. a loopback docker-registry)",
		Long: `Pushes busybox:1 (the workload: Debian's static busybox), pull:1 (random
layers, for the pull step) and, with --pause-binary, pause:3.10.2 (for
runtimes that run an infra container) to REGISTRY. Point the runtimes' registry
mirror for ` + upstream + ` at it (hosts.toml), or name the images REGISTRY/busybox:1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.registry == "" {
				return errors.New("--registry HOST:PORT is required")
			}
			return pushImages(o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.registry, "registry", "", "host:port of the registry (plain HTTP)")
	f.StringVar(&o.pauseBinary, "pause-binary", "", "static binary to run as /pause in the pause image (e.g. berth-pause); empty: no pause image")
	f.IntVar(&o.pullLayers, "pull-layers", 3, "layers in the pull image")
	f.IntVar(&o.pullLayerMB, "pull-layer-mib", 8, "MiB of random data per pull layer")
	return cmd
}

func run(ctx context.Context, o *runOptions) error {
	if len(o.targets) == 0 {
		return errors.New("no --target")
	}
	var specs []TargetSpec
	names := map[string]bool{}
	for _, s := range o.targets {
		t, err := ParseTarget(s)
		if err != nil {
			return err
		}
		if names[t.Name] {
			return fmt.Errorf("two targets are named %q", t.Name)
		}
		names[t.Name] = true
		specs = append(specs, t)
	}
	if o.workDir == "" {
		d, err := os.MkdirTemp("", "berth-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.workDir = d
	}
	o.runID = strings.SplitN(uuid.NewString(), "-", 2)[0]
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	start := time.Now()
	rep := &Report{
		Date: start.UTC().Format("2006-01-02 15:04 UTC"), CPUs: runtime.NumCPU(), LoadBefore: loadAvg(),
		Client: clientVersion(), Counts: o.counts, Image: o.image, PullImage: o.pullImage, Runc: runcVersion(o.runc),
	}
	rep.Host, _ = os.Hostname()
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		rep.Kernel = unix.ByteSliceToString(uts.Release[:])
	}
	var paired *floor
	if o.counts.PairedFloor && o.counts.FloorRuns > 0 && o.counts.Pods > 0 {
		f, err := newFloor(o.runc, o.workDir)
		if err != nil {
			return fmt.Errorf("paired floor: %w", err)
		}
		defer f.close()
		paired = f
	}
	var runners []*runner
	for _, s := range specs {
		r := &runner{spec: s, opts: o, rec: newRecorder(), res: &TargetResult{Name: s.Name, Endpoint: s.Endpoint}, floor: paired}
		rep.Targets = append(rep.Targets, r.res)
		runners = append(runners, r)
		defer r.cleanup()
		if err := r.setup(ctx); err != nil {
			r.failed = true
			r.fail("setup", err)
		}
	}
	// Idle: every daemon has answered and pulled, nothing runs.
	sleep(ctx, 2*time.Second)
	for _, r := range runners {
		if r.res.PID > 0 {
			if m, err := readMemory(r.res.PID); err == nil {
				r.res.IdleMemory = &m
			}
		}
	}
	each := func(name string, f func(r *runner) error) {
		for _, r := range runners {
			if r.failed || ctx.Err() != nil {
				continue
			}
			waitQuiet(ctx, r.spec.Name+": "+name)
			slog.Info("workload", "target", r.spec.Name, "workload", name)
			if err := f(r); err != nil {
				r.fail(name, err)
			}
		}
	}
	c := o.counts
	// The floor's runs are split: half before the sequential pods, half
	// after them (and the execs and CLI runs), so that it samples the
	// machine over the same stretch of time as the pod starts it is
	// compared with (these VMs drift by tens of percent within minutes).
	// Each half's figures are reported too: a p50 pooled from two halves
	// that drifted apart falls between them.
	floor := newRecorder()
	runFloor := func(n int, half string) {
		if n <= 0 || ctx.Err() != nil || rep.FloorError != "" {
			return
		}
		waitQuiet(ctx, "runc floor")
		slog.Info("workload", "workload", "runc floor", "runs", n, "half", half)
		part := newRecorder()
		err := runcFloor(o.runc, o.workDir, n, part)
		for _, res := range part.results() {
			res.Step = half + ": " + res.Step
			rep.FloorHalves = append(rep.FloorHalves, res)
		}
		floor.merge(part)
		if err != nil {
			rep.FloorError = err.Error()
			slog.Error("runc floor failed", "err", err)
		}
	}
	runFloor(c.FloorRuns/2, "before the sequential pods")
	each("sequential kubelet-shaped pods", func(r *runner) error { return r.sequential(ctx, Kubelet, c.Pods) })
	each("sequential shared-PID pods", func(r *runner) error { return r.sequential(ctx, SharedPID, c.Pods) })
	each("ExecSync", func(r *runner) error { return r.execs(ctx, c.Execs) })
	if c.CLIRuns > 0 {
		each("berth run --rm", func(r *runner) error { return r.cliRuns(ctx, c.CLIRuns) })
	}
	runFloor(c.FloorRuns-c.FloorRuns/2, "after them")
	if c.FloorRuns > 0 {
		rep.Floor = floor.results()
	}
	each("concurrent pods", func(r *runner) error {
		return r.concurrent(ctx, c.ConcurrentPods, c.Clients, c.Lists, c.Settle)
	})
	if c.Pulls > 0 {
		each("pulls", func(r *runner) error { return r.pulls(ctx, o.pullImage, c.Pulls) })
	}
	for _, r := range runners {
		r.res.Steps = r.rec.results()
		r.cleanup()
		r.c = nil // cleaned: the deferred cleanup has nothing left to do
	}
	rep.LoadAfter = loadAvg()
	rep.Seconds = time.Since(start).Seconds()
	rep.WriteTable(os.Stdout)
	if o.jsonPath != "" {
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.jsonPath, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	for _, t := range rep.Targets {
		if len(t.Errors) > 0 || len(t.CleanupErrs) > 0 {
			return fmt.Errorf("%s: %d workloads failed, %d cleanup errors (see above)", t.Name, len(t.Errors), len(t.CleanupErrs))
		}
	}
	if rep.FloorError != "" {
		return errors.New("the runc floor failed (see above)")
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// clientVersion names the client and the libraries that speak CRI.
func clientVersion() string {
	s := "berth-bench"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return s
	}
	var deps []string
	for _, d := range bi.Deps {
		if d.Path == "k8s.io/cri-api" || d.Path == "google.golang.org/grpc" {
			deps = append(deps, d.Path+" "+d.Version)
		}
	}
	return s + " (" + strings.Join(append(deps, bi.GoVersion), ", ") + ")"
}

func runcVersion(runc string) string {
	out, err := exec.Command(runc, "--version").Output()
	if err != nil {
		return "runc: " + err.Error()
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return line
}
