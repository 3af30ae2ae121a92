package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// runLogRoot holds the pod log directories of pods made by `berth run`,
// apart from kubelet's /var/log/pods.
var runLogRoot = "/var/log/berth/pods"

// validName is docker's rule for container names; the name also becomes a
// directory under the pod's log directory.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

type runOpts struct {
	name, namespace, workdir, user, entrypoint string
	rm, detach, interactive, tty               bool
	env, envFiles, labels, publish, volumes    []string
	stopTime                                   int64
	runtime, network, pull, memory             string
	cpus                                       float64
}

// parseEnv reads -e values: K=V, or K alone to pass K from our environment
// (skipped when unset, as docker does).
func parseEnv(vals []string, lookup func(string) (string, bool)) ([]*runtimeapi.KeyValue, error) {
	var out []*runtimeapi.KeyValue
	for _, v := range vals {
		k, val, ok := strings.Cut(v, "=")
		if k == "" {
			return nil, fmt.Errorf("-e %q: want KEY=VALUE or KEY", v)
		}
		if !ok {
			if val, ok = lookup(k); !ok {
				continue
			}
		}
		out = append(out, &runtimeapi.KeyValue{Key: k, Value: []byte(val)})
	}
	return out, nil
}

// parseUser reads --user: uid, uid:gid, name or name:gid. CRI has no field
// for a group name.
func parseUser(s string) (*runtimeapi.LinuxContainerSecurityContext, error) {
	if s == "" {
		return nil, nil
	}
	sc := &runtimeapi.LinuxContainerSecurityContext{}
	user, group, hasGroup := strings.Cut(s, ":")
	if user == "" {
		return nil, fmt.Errorf("--user %q: want uid, uid:gid, name or name:gid", s)
	}
	if uid, err := strconv.ParseInt(user, 10, 64); err == nil {
		if uid < 0 {
			return nil, fmt.Errorf("--user %q: negative uid", s)
		}
		sc.RunAsUser = &runtimeapi.Int64Value{Value: uid}
	} else {
		sc.RunAsUsername = user
	}
	if hasGroup {
		gid, err := strconv.ParseInt(group, 10, 64)
		if err != nil || gid < 0 {
			return nil, fmt.Errorf("--user %q: the group must be a numeric gid", s)
		}
		sc.RunAsGroup = &runtimeapi.Int64Value{Value: gid}
	}
	return sc, nil
}

func randomName() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "berth-" + hex.EncodeToString(b)
}

func runCmd(a *app) *cobra.Command {
	var o runOpts
	cmd := &cobra.Command{
		Use:   "run [flags] IMAGE [CMD [ARG...]]",
		Short: "Run a command in a new pod, docker-style",
		Long: "Create a pod and one container in it from IMAGE (pulled if absent), start it and,\n" +
			"unless -d, print its output until it exits, then exit with its exit code.\n" +
			"Ctrl-C stops the container (a second Ctrl-C kills it). -i passes stdin to it,\n" +
			"-t gives it a terminal (then keys, Ctrl-C included, go to the container).",
		Args: cobra.MinimumNArgs(1),
		Example: "  berth run --rm -e GREETING=hi busybox sh -c 'echo $GREETING'\n" +
			"  berth run -d --name web -p 8080:80 -v ./site:/usr/share/nginx/html:ro --memory 256m nginx\n" +
			"  berth run --rm -it busybox sh",
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd.Context(), o, args[0], args[1:])
		},
	}
	cmd.Flags().SetInterspersed(false)
	f := cmd.Flags()
	f.StringVar(&o.name, "name", "", "pod and container name (default: random)")
	f.StringVar(&o.namespace, "namespace", "default", "pod namespace")
	f.BoolVar(&o.rm, "rm", false, "remove the container and pod when it exits")
	f.BoolVarP(&o.detach, "detach", "d", false, "print the container ID and leave it running")
	f.StringArrayVarP(&o.env, "env", "e", nil, "set an environment variable, KEY=VALUE or KEY (repeatable)")
	f.StringVarP(&o.workdir, "workdir", "w", "", "working directory inside the container")
	f.StringVarP(&o.user, "user", "u", "", "user as uid, uid:gid, name or name:gid")
	f.StringArrayVarP(&o.labels, "label", "l", nil, "label for the pod and container, key=value (repeatable)")
	f.StringVar(&o.entrypoint, "entrypoint", "", "replace the image's entrypoint")
	f.Int64Var(&o.stopTime, "stop-timeout", 10, "seconds Ctrl-C waits for the container to stop before killing it")
	f.StringArrayVar(&o.envFiles, "env-file", nil, "read environment variables from a file of KEY=VALUE lines (repeatable)")
	f.StringArrayVarP(&o.publish, "publish", "p", nil, "publish a port, [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp|sctp] (repeatable)")
	f.StringArrayVarP(&o.volumes, "volume", "v", nil, "bind mount a host path, HOST_PATH:CONTAINER_PATH[:ro] (repeatable)")
	f.BoolVarP(&o.interactive, "interactive", "i", false, "pass stdin to the container")
	f.BoolVarP(&o.tty, "tty", "t", false, "give the container a terminal")
	f.StringVar(&o.runtime, "runtime", "", "runtime handler (RuntimeClass), e.g. runsc (default: the runtime's default)")
	f.StringVar(&o.network, "network", "", "\"host\" for the host's network namespace (default: a pod network)")
	f.StringVar(&o.pull, "pull", "missing", "pull the image: always, missing or never")
	f.StringVarP(&o.memory, "memory", "m", "", "memory limit (512m, 1g)")
	f.Float64Var(&o.cpus, "cpus", 0, "CPU limit in cores (0.5 = half a core)")
	return cmd
}

func (a *app) run(parent context.Context, o runOpts, image string, args []string) error {
	if o.rm && o.detach {
		return errors.New("--rm and -d cannot be used together: nothing would remove the container when it exits")
	}
	if o.name == "" {
		o.name = randomName()
	}
	if !validName.MatchString(o.name) {
		return fmt.Errorf("--name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit", o.name)
	}
	if !validName.MatchString(o.namespace) {
		return fmt.Errorf("--namespace %q: use letters, digits, '_', '.' and '-'", o.namespace)
	}
	fileEnv, err := readEnvFiles(o.envFiles)
	if err != nil {
		return err
	}
	// -e comes after the files, so it wins (see dedupEnv).
	envs, err := parseEnv(append(fileEnv, o.env...), os.LookupEnv)
	if err != nil {
		return err
	}
	envs = dedupEnv(envs)
	ports, err := parsePublish(o.publish)
	if err != nil {
		return err
	}
	mounts, err := parseVolumes(o.volumes)
	if err != nil {
		return err
	}
	policy, err := parsePullPolicy(o.pull)
	if err != nil {
		return err
	}
	netMode := runtimeapi.NamespaceMode_POD
	switch o.network {
	case "", "pod", "bridge", "default":
	case "host":
		netMode = runtimeapi.NamespaceMode_NODE
		if len(ports) > 0 {
			return errors.New("-p and --network host cannot be used together: with the host's network every port is the host's already")
		}
	default:
		return fmt.Errorf("--network %q: want host (or nothing, for a pod network)", o.network)
	}
	var res *runtimeapi.LinuxContainerResources
	if o.memory != "" || o.cpus != 0 {
		res = &runtimeapi.LinuxContainerResources{}
		if o.memory != "" {
			if res.MemoryLimitInBytes, err = parseBytes(o.memory); err != nil {
				return fmt.Errorf("--memory: %w", err)
			}
		}
		if o.cpus < 0 {
			return errors.New("--cpus cannot be negative")
		}
		res.CpuPeriod, res.CpuQuota = cpusToQuota(o.cpus)
	}
	sc, err := parseUser(o.user)
	if err != nil {
		return err
	}
	labels, err := parseLabels(o.labels)
	if err != nil {
		return err
	}
	if err := a.connect(); err != nil {
		return err
	}

	uid := uuid.NewString()
	logDir := filepath.Join(runLogRoot, o.namespace+"_"+o.name+"_"+uid)
	podCfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: o.name, Namespace: o.namespace, Uid: uid},
		Hostname:     o.name,
		LogDirectory: logDir,
		Labels:       labels,
		PortMappings: ports,
		// Like docker run: the container gets a PID namespace of its own
		// (CRI's zero value, POD, would ask for a shared one).
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER, Network: netMode},
		}},
	}
	if netMode == runtimeapi.NamespaceMode_NODE {
		podCfg.Hostname = "" // the host's, as kubelet leaves it for host-network pods
	}
	if sc == nil {
		sc = &runtimeapi.LinuxContainerSecurityContext{}
	}
	sc.NamespaceOptions = &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER, Network: netMode}
	ctrCfg := &runtimeapi.ContainerConfig{
		Metadata:   &runtimeapi.ContainerMetadata{Name: o.name},
		Image:      &runtimeapi.ImageSpec{Image: image},
		Args:       args,
		WorkingDir: o.workdir,
		Envs:       envs,
		Labels:     labels,
		LogPath:    filepath.Join(o.name, "0.log"),
		Mounts:     mounts,
		Linux:      &runtimeapi.LinuxContainerConfig{SecurityContext: sc, Resources: res},
		// stdin_once: the end of our input is the container's.
		Stdin:     o.interactive,
		StdinOnce: o.interactive,
		Tty:       o.tty,
	}
	if o.entrypoint != "" {
		ctrCfg.Command = []string{o.entrypoint}
	}

	// Until the container runs, Ctrl-C cancels the setup, and the deferred
	// cleanup below removes what was made.
	setupCtx, stopSetup := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stopSetup()

	pctx, pcancel, err := a.longCtx(setupCtx, 0)
	if err != nil {
		return err
	}
	err = a.getImage(pctx, image, podCfg, policy)
	pcancel()
	if err != nil {
		return err
	}

	// Like kubelet, make the log directories the runtime writes into; the
	// CLI reads the log from this host anyway.
	if err := os.MkdirAll(filepath.Join(logDir, o.name), 0o755); err != nil {
		return fmt.Errorf("creating log directory: %w", err)
	}

	var podID, ctrID string
	keep := false
	defer func() {
		if !keep {
			a.removeRun(podID, ctrID, logDir)
		}
	}()

	var exits *exitWatch
	if !o.detach && !o.tty {
		// Before the container exists: see exitWatch.
		wctx, stopWatch := context.WithCancel(parent)
		defer stopWatch()
		exits = a.watchExits(wctx)
	}
	ctx, cancel, err := a.ctx(setupCtx)
	if err != nil {
		return err
	}
	defer cancel()
	pr, err := a.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: podCfg, RuntimeHandler: o.runtime})
	if err != nil {
		return fmt.Errorf("running pod %s: %w", o.name, err)
	}
	podID = pr.GetPodSandboxId()
	cr, err := a.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: ctrCfg, SandboxConfig: podCfg})
	if err != nil {
		return withInvokeCode(fmt.Errorf("creating container %s: %w", o.name, err))
	}
	ctrID = cr.GetContainerId()
	if exits != nil {
		exits.follow(ctrID)
	}
	if _, err := a.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: ctrID}); err != nil {
		return withInvokeCode(fmt.Errorf("starting container %s: %w", o.name, err))
	}
	cancel()
	keep = !o.rm
	if o.detach {
		fmt.Fprintln(a.stdout, ctrID)
		return nil
	}
	if setupCtx.Err() != nil {
		// Interrupted just as it started: stop it, as Ctrl-C means.
		_ = a.stopContainer(parent, ctrID, 0)
	}

	if o.tty {
		// The terminal's keys, Ctrl-C included, go to the container.
		stopSetup()
		code, err := a.attachRun(parent, ctrID, o.interactive)
		if err != nil {
			return fmt.Errorf("attached to %s: %w", o.name, err)
		}
		if code != 0 {
			return &exitError{code: code}
		}
		return a.exitStatusOf(parent, ctrID)
	}
	waitCtx, stopSignals := a.stopOnSignal(parent, ctrID, o.stopTime)
	defer stopSignals()
	stopSetup()
	if o.interactive {
		// Input through an attach session; output from the log file, as
		// without -i, so none is lost before the session is up.
		go func() {
			if _, err := a.attachStdin(waitCtx, ctrID); err != nil && waitCtx.Err() == nil {
				fmt.Fprintf(a.stderr, "berth: passing input to %s: %v\n", o.name, err)
			}
		}()
	}
	if err := a.printLogsUntilExit(waitCtx, ctrID, true, -1, false, exits); err != nil {
		return fmt.Errorf("following output of %s: %w", o.name, err)
	}
	st := exits.exitStatus()
	if st == nil {
		if st, err = a.containerStatus(parent, ctrID); err != nil {
			return err
		}
	}
	if code := st.GetExitCode(); code != 0 {
		return &exitError{code: int(code)}
	}
	return nil
}

// dedupEnv keeps the last value of each variable, in first-seen order.
func dedupEnv(envs []*runtimeapi.KeyValue) []*runtimeapi.KeyValue {
	last := map[string]int{}
	for i, kv := range envs {
		last[kv.GetKey()] = i
	}
	var out []*runtimeapi.KeyValue
	for i, kv := range envs {
		if last[kv.GetKey()] == i {
			out = append(out, kv)
		}
	}
	return out
}

// attachRun joins a run -t container's terminal (and input with -i).
func (a *app) attachRun(ctx context.Context, id string, stdin bool) (int, error) {
	actx, cancel, err := a.ctx(ctx)
	if err != nil {
		return -1, err
	}
	resp, err := a.rt.Attach(actx, &runtimeapi.AttachRequest{ContainerId: id, Stdin: stdin, Stdout: true, Tty: true})
	cancel()
	if err != nil {
		return -1, err
	}
	return a.stream(ctx, resp.GetUrl(), streamOpts{stdin: stdin, stdout: true, tty: true})
}

// attachStdin passes our stdin to a run -i container.
func (a *app) attachStdin(ctx context.Context, id string) (int, error) {
	actx, cancel, err := a.ctx(ctx)
	if err != nil {
		return -1, err
	}
	resp, err := a.rt.Attach(actx, &runtimeapi.AttachRequest{ContainerId: id, Stdin: true})
	cancel()
	if err != nil {
		return -1, err
	}
	return a.stream(ctx, resp.GetUrl(), streamOpts{stdin: true})
}

// stopOnSignal stops the container on the first SIGINT/SIGTERM and kills it
// on the second. Waiting goes on until it has exited, so the log is drained
// and the exit code known; the returned context only ends with parent.
func (a *app) stopOnSignal(parent context.Context, id string, secs int64) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		n := 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-sigs:
				n++
				t := secs
				if n == 1 {
					fmt.Fprintf(a.stderr, "berth: stopping %s (Ctrl-C again to kill)\n", shortID(id))
				} else {
					t = 0
				}
				go func() {
					if err := a.stopContainer(ctx, id, t); err != nil {
						fmt.Fprintf(a.stderr, "berth: %v\n", err)
					}
				}()
			}
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		cancel()
	}
}

// removeRun undoes what run made, best effort, saying what it could not.
// RemovePodSandbox alone is enough: CRI has it stop the pod and stop and
// remove its containers, in one round trip instead of four. The log
// directory goes meanwhile.
func (a *app) removeRun(podID, ctrID, logDir string) {
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout+10*time.Second)
	defer cancel()
	warn := func(err error) { fmt.Fprintf(a.stderr, "berth: cleaning up: %v\n", err) }
	logsGone := make(chan error, 1)
	go func() { logsGone <- os.RemoveAll(logDir) }()
	if podID != "" {
		if _, err := a.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
			if ctrID != "" {
				warn(fmt.Errorf("pod %s with container %s: %w", shortID(podID), shortID(ctrID), err))
			} else {
				warn(err)
			}
		}
	}
	if err := <-logsGone; err != nil {
		warn(err)
	}
}
