package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go/features"

	"github.com/berth-project/berth/internal/config"
	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/runtime/conmon"
)

// Options is what a Registry is built from.
type Options struct {
	Handlers map[string]config.Runtime // [runtimes.<name>]
	Default  string                    // handler of pods that name none
	Conmon   string                    // conmon binary (looked up on PATH when bare)
	StateDir string                    // default runtime roots <StateDir>/runtimes/<name>, runsc shims
	ExitDir  string                    // where conmon records exits, for all handlers
	// SystemdCgroup: the systemd cgroup driver is in use.
	SystemdCgroup bool
	// RecursiveReadOnlyMounts: the kernel can apply them (mount_setattr),
	// so handlers whose runtime knows "rro" get the feature.
	RecursiveReadOnlyMounts bool
	// IDMapMounts: the kernel idmaps mounts of the filesystems berth
	// mounts into containers (host.ProbeIDMapMounts), so handlers whose
	// runtime does idmapped mounts can run pods in user namespaces.
	IDMapMounts bool
	Logger      *slog.Logger
}

// Registry holds the handlers, built once at start.
type Registry struct {
	handlers map[string]Handler
	names    []string // sorted
	def      string
	exitDir  string
	runtimes []conmon.Runtime // every handler's runtime, for reaping orphans
	spares   *conmon.Spares
	closers  []func()
}

// NewRegistry finds each handler's binary, asks it for its features and
// builds its Handler. A missing binary is an error that says how to get it.
func NewRegistry(ctx context.Context, o Options) (*Registry, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	conmonPath, err := LookBinary("conmon", o.Conmon)
	if err != nil {
		return nil, err
	}
	r := &Registry{handlers: map[string]Handler{}, def: o.Default, exitDir: o.ExitDir}
	if err := os.MkdirAll(o.ExitDir, 0o700); err != nil {
		return nil, err
	}
	// Exit codes name containers: root-only, also when an older berthd
	// made the dir traversable.
	if err := os.Chmod(o.ExitDir, 0o700); err != nil {
		return nil, err
	}
	// One monitor started ahead for the next container, whichever its
	// handler (berth-monitor only; see conmon.Spares). A failure below
	// ends it through r.Close.
	spares := conmon.NewSpares(conmonPath, log)
	r.spares = spares
	r.closers = append(r.closers, spares.Close)
	for _, name := range slices.Sorted(maps.Keys(o.Handlers)) {
		c := o.Handlers[name]
		h, err := r.newHandler(ctx, name, c, conmonPath, spares, o, log)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("runtime handler %q: %w", name, err)
		}
		r.handlers[name] = h
		r.names = append(r.names, name)
	}
	return r, nil
}

// PrepareAhead starts what is kept ready for the next container (a spare
// monitor) if it was taken: berthd calls it once the pod start calls
// (RunPodSandbox, CreateContainer, StartContainer) are over.
func (r *Registry) PrepareAhead() { r.spares.Refill() }

func (r *Registry) newHandler(ctx context.Context, name string, c config.Runtime, conmonPath string, spares *conmon.Spares, o Options, log *slog.Logger) (Handler, error) {
	path, err := LookBinary(name, c.Path)
	if err != nil {
		return nil, err
	}
	root := c.Root
	if root == "" {
		root = filepath.Join(o.StateDir, "runtimes", name)
	}
	args := append([]string(nil), c.Args...)
	runsc := isRunsc(path)
	switch {
	case runsc:
		args = runscDefaultArgs(ctx, path, args)
	case o.SystemdCgroup:
		args = append(args, "--systemd-cgroup")
	}
	rt := &cli{name: name, path: path, root: root, args: args}
	features := Features{
		RecursiveReadOnlyMounts: c.Features.RecursiveReadOnlyMounts,
		UserNamespaces:          c.Features.UserNamespaces,
	}
	// What the runtime says it supports; detection only adds to what the
	// config sets.
	if f, err := probeFeatures(ctx, path); err != nil {
		log.Info("runtime reports no features document; only the configured features apply", "handler", name, "err", err)
	} else {
		features.MountOptions = f.MountOptions
		if o.RecursiveReadOnlyMounts && slices.Contains(f.MountOptions, "rro") {
			features.RecursiveReadOnlyMounts = true
		}
		features.IDMapMounts = f.Linux != nil && f.Linux.MountExtensions != nil && f.Linux.MountExtensions.IDMap != nil &&
			f.Linux.MountExtensions.IDMap.Enabled != nil && *f.Linux.MountExtensions.IDMap.Enabled
		userNS := f.Linux != nil && slices.Contains(f.Linux.Namespaces, "user")
		// A pod in a user namespace needs its rootfs, volumes and pod
		// files idmapped: by the runtime (bind mounts) and the kernel
		// (berth's overlay layers). gVisor's sandbox is not wired for it.
		if userNS && features.IDMapMounts && o.IDMapMounts && !runsc {
			features.UserNamespaces = true
		}
	}
	log.Info("runtime handler features", "handler", name, "path", path,
		"recursive_read_only_mounts", features.RecursiveReadOnlyMounts, "idmap_mounts", features.IDMapMounts,
		"user_namespaces", features.UserNamespaces, "mount_options", len(features.MountOptions))
	h := conmonHandler{
		rt: rt, conmonPath: conmonPath, spares: spares, exitDir: o.ExitDir, monitorRT: rt, features: features,
		fifoStart: filepath.Base(path) == "runc", holdsFifo: filepath.Base(conmonPath) == "berth-monitor",
		spec: SpecSettings{
			PrivilegedWithoutHostDevices: c.PrivilegedWithoutHostDevices,
			PodAnnotations:               c.PodAnnotations,
			ContainerAnnotations:         c.ContainerAnnotations,
		},
	}
	r.runtimes = append(r.runtimes, rt)
	if !runsc {
		return &h, nil
	}
	rh, err := newRunscHandler(h, o.StateDir)
	if err != nil {
		return nil, err
	}
	r.closers = append(r.closers, rh.close)
	return rh, nil
}

// Handler returns the named handler; "" names the default one.
func (r *Registry) Handler(name string) (Handler, error) {
	if name == "" {
		name = r.def
	}
	h, ok := r.handlers[name]
	if !ok {
		return nil, errdefs.Invalid(fmt.Sprintf("runtime_handler %q is not configured; known handlers: %v", name, r.names))
	}
	return h, nil
}

// Handlers returns every handler, by name.
func (r *Registry) Handlers() []Handler {
	out := make([]Handler, 0, len(r.names))
	for _, n := range r.names {
		out = append(out, r.handlers[n])
	}
	return out
}

// Names lists the handler names, sorted.
func (r *Registry) Names() []string { return slices.Clone(r.names) }

// Default is the handler of pods that name none.
func (r *Registry) Default() string { return r.def }

// WatchExits calls fn with the container id of each exit the monitors
// record, of every handler: first those already recorded, then each new
// one. fn may see an id more than once. It returns nil when ctx ends.
func (r *Registry) WatchExits(ctx context.Context, fn func(id string)) error {
	return conmon.Watch(ctx, r.exitDir, fn)
}

// ReapOrphan removes what a create cut short by a crash of berthd left of
// container id (whose handler is unknown): its conmon and any process
// working on its bundle, its state under every handler's runtime, its
// cgroup and its recorded exit. See conmon.ReapOrphan for the order.
func (r *Registry) ReapOrphan(ctx context.Context, id, bundleDir string) {
	conmon.ReapOrphan(ctx, id, bundleDir, bundleDir, r.runtimes)
	if err := conmon.RemoveExit(r.exitDir, id); err != nil {
		slog.Warn("removing exit of half-created container", "container", id, "err", err)
	}
}

// Close releases what handlers hold on the host (runsc's pinned network
// namespace); containers keep running.
func (r *Registry) Close() {
	for _, c := range r.closers {
		c()
	}
}

// installHint says how to get a missing binary on Debian.
var installHint = map[string]string{
	"runc":          "apt-get install runc (or run hack/install.sh)",
	"conmon":        "apt-get install conmon (or run hack/install.sh)",
	"berth-monitor": "hack/install.sh builds it next to berthd (hack/build-helpers.sh)",
	"runsc":         "hack/install.sh --with-runsc builds gVisor's runsc",
}

// LookBinary finds a binary the config names (name when path is empty),
// with a hint on how to install it when it is missing.
func LookBinary(name, path string) (string, error) {
	if path == "" {
		path = name
	}
	found, err := exec.LookPath(path)
	if err != nil {
		hint := installHint[filepath.Base(path)]
		if hint == "" {
			hint = "install it or fix the path in the config"
		}
		return "", fmt.Errorf("required binary %s (%s) not found: %s", name, path, hint)
	}
	return found, nil
}

// probeFeatures asks an OCI runtime for its runtime-spec "features"
// document (runc >= 1.1): the mount options it knows, its namespaces and
// whether it does idmapped mounts.
func probeFeatures(ctx context.Context, path string) (*features.Features, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "features").Output()
	if err != nil {
		return nil, err
	}
	var f features.Features
	if err := json.Unmarshal(out, &f); err != nil {
		return nil, fmt.Errorf("decode %s features: %w", path, err)
	}
	return &f, nil
}
