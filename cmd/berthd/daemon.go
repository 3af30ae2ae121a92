package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"

	"github.com/berth-project/berth/internal/admin"
	"github.com/berth-project/berth/internal/cdi"
	"github.com/berth-project/berth/internal/config"
	"github.com/berth-project/berth/internal/container"
	"github.com/berth-project/berth/internal/cri"
	"github.com/berth-project/berth/internal/events"
	"github.com/berth-project/berth/internal/host"
	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/memtrim"
	"github.com/berth-project/berth/internal/nri"
	"github.com/berth-project/berth/internal/pod"
	"github.com/berth-project/berth/internal/registry"
	"github.com/berth-project/berth/internal/runtime"
	"github.com/berth-project/berth/internal/sandbox"
	"github.com/berth-project/berth/internal/stats"
	"github.com/berth-project/berth/internal/store"
	"github.com/berth-project/berth/internal/stream"
	"github.com/berth-project/berth/internal/usernsdir"
)

// logLevel is shared by every handler so SIGHUP can change it in place.
var logLevel = new(slog.LevelVar)

func newLogger(cfg *config.Config) *slog.Logger {
	logLevel.Set(cfg.SlogLevel())
	opts := &slog.HandlerOptions{Level: logLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func run(ctx context.Context, cfg *config.Config, reload func() (*config.Config, error)) error {
	log := newLogger(cfg)
	slog.SetDefault(log)
	tuneGC()
	// A known umask, not the caller's: 0022, so that files made with
	// explicit modes get them (pod files and unpacked layers must stay
	// readable by container users, which 0077 would break). Secrecy comes
	// from root-only directories (privateDir), not from the umask.
	syscall.Umask(0o022)

	// Root and state dir lead to every container's files (writable layers,
	// mounted rootfs): root-only, as containerd's are since CVE-2021-41103.
	// Dirs an older berthd made traversable are tightened here.
	for _, d := range []string{cfg.Root, cfg.StateDir} {
		if err := privateDir(d); err != nil {
			return err
		}
	}
	// The rootfs mount points of pods in user namespaces, which the pods'
	// remapped roots must reach: outside the root-only dirs, searchable
	// but not listable (internal/usernsdir says why that is safe).
	usernsDir := usernsdir.New(cfg.UsernsDir())
	if err := usernsDir.Init(); err != nil {
		return err
	}
	// Pods in user namespaces need idmapped mounts of the layers' and the
	// pod files' filesystems.
	idmap := host.ProbeIDMapMounts(pauseBinary(), cfg.StateDir, cfg.Root)
	if idmap != nil {
		log.Info("no idmapped mounts here: pods in user namespaces are not offered", "err", idmap)
	}
	// The runtime handlers, each asked for its features; after this the
	// config's [runtimes] is read only through them.
	runtimes, err := runtime.NewRegistry(ctx, runtime.Options{
		Handlers: cfg.Runtimes, Default: cfg.DefaultRuntime, Conmon: monitorBinary(cfg.Conmon),
		StateDir: cfg.StateDir, ExitDir: filepath.Join(cfg.StateDir, "exits"),
		SystemdCgroup: cfg.CgroupDriver() == "systemd", RecursiveReadOnlyMounts: host.MountSetattr(),
		IDMapMounts: idmap == nil, Logger: log,
	})
	if err != nil {
		return err
	}
	defer runtimes.Close()
	// The socket's dir may be shared (/run): made if missing, never changed.
	if err := os.MkdirAll(filepath.Dir(cfg.Socket), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(cfg.Socket), err)
	}
	if err := claimSocket(cfg.Socket); err != nil {
		return err
	}

	host, err := hostConfig(cfg, log)
	if err != nil {
		return err
	}
	st, err := store.Open(filepath.Join(cfg.Root, "berth.db"))
	if err != nil {
		return err
	}
	defer st.Close()

	images, err := image.New(cfg.Root, st)
	if err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	defer images.Close()
	images.SetMaxLayerUnpackedBytes(cfg.Images.MaxLayerUnpackedBytes)
	images.SetMaxLayerEntries(cfg.Images.MaxLayerEntries)
	images.SetPinnedRefs(cfg.Images.PinnedImages)
	registries, err := registry.Load(cfg.Images.RegistryConfigDir)
	if err != nil {
		return fmt.Errorf("registry host configuration: %w", err)
	}
	puller := image.NewPuller(images, image.PullConfig{
		Registries: registries, MaxConcurrentDownloads: cfg.Images.MaxConcurrentDownloads,
		ProgressTimeout: cfg.Images.PullProgressTimeout.Duration, UserAgent: "berth/" + cri.Version,
	})
	podNetwork, err := newNetwork(cfg, log)
	if err != nil {
		return err
	}
	defer podNetwork.Close()
	sandboxes, err := sandbox.New(sandbox.Config{
		Store: st, StateDir: cfg.StateDir, DefaultCgroupParent: cfg.DefaultCgroupParent,
		Runtimes: runtimes, Host: host,
		PauseBinary: pauseBinary(), Logger: log, Network: podNetwork,
		CgroupDriver: cfg.CgroupDriver(), UsernsDir: usernsDir,
	})
	if err != nil {
		return err
	}
	// Before the network closes: the pod network prepared ahead goes.
	defer sandboxes.Close()
	bus := events.NewBus(eventBacklog)
	containers, err := container.New(ctx, container.Config{
		Store: st, Root: cfg.Root, StateDir: cfg.StateDir, Runtimes: runtimes,
		Sandboxes: sandboxes, Images: images, Host: host, Logger: log, Events: bus,
		CgroupDriver: cfg.CgroupDriver(), UsernsDir: usernsDir,
	})
	if err != nil {
		return err
	}
	// Devices and node plugins, each built once: the CDI spec cache
	// watches its dirs, NRI holds the plugin connections.
	devices, err := cdi.New(cfg.CDI, log)
	if err != nil {
		return err
	}
	plugins, err := nri.New(cfg.NRI, nri.Options{RuntimeName: "berth", RuntimeVersion: cri.Version, Logger: log, InjectCDI: devices.Inject})
	if err != nil {
		return err
	}
	// pod.New also collects what a crash left: half-created containers,
	// then the blobs and layers of a pull that had not recorded its image
	// yet, or of a RemoveImage whose GC had not finished.
	pods, err := pod.New(ctx, pod.Config{Sandboxes: sandboxes, Containers: containers, Images: images, Logger: log,
		NRI: plugins, CDI: devices, Events: bus, UsernsDir: usernsDir})
	if err != nil {
		return err
	}
	// Before serving CRI: pre-registered plugins synchronise with what
	// the records hold, and no event may run into that.
	if err := plugins.Start(pods.Domain()); err != nil {
		return err
	}
	defer plugins.Stop()

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go reloadOnHUP(ctx, log, reload, puller, images)
	go dumpStacksOnUSR1(ctx, log)
	go func() {
		if err := containers.Watch(ctx); err != nil && ctx.Err() == nil {
			log.Error("exit watcher stopped", "err", err)
		}
	}()
	go janitor(ctx, cfg.UncollectedResultTTL.Duration, sandboxes, containers)

	statsSvc := stats.New(stats.Config{Root: cfg.Root, DefaultCgroupParent: cfg.DefaultCgroupParent, Logger: log})
	defer statsSvc.Close()
	streams, err := stream.New(stream.Config{Address: cfg.Streaming.Address, TLSCert: cfg.Streaming.TLSCert, TLSKey: cfg.Streaming.TLSKey,
		Containers: containers, Sandboxes: sandboxes, Runtimes: runtimes, Logger: log})
	if err != nil {
		return err
	}
	defer streams.Close() // after the CRI server: ends open exec/attach sessions
	go func() {
		if err := streams.Serve(); err != nil {
			log.Error("streaming server stopped", "err", err)
		}
	}()
	log.Info("streaming server listening", "url", streams.URL())
	server := &cri.Server{Config: cfg, Runtimes: runtimes, Pods: pods, Sandboxes: sandboxes, Containers: containers, Images: images, Puller: puller, Network: podNetwork, Log: log,
		Stats: statsSvc, Events: bus, Streams: streams, Security: cri.SecurityStatus(host)}
	// After a burst of pod starts, stops or pulls, give back what it left
	// mapped, and at rest what each GC cycle maps again (internal/memtrim);
	// the idle trim's error is the full trim's, logged there.
	trimmer := memtrim.New(cfg.MemoryTrimAfter.Duration, func() { trimQuietMemory(log) },
		func() { unmapBinary(unix.MADV_DONTNEED) })
	go trimmer.Run(ctx)
	grpcServer := grpc.NewServer(append(server.ServerOptions(), grpc.ChainUnaryInterceptor(trimmer.UnaryInterceptor))...)
	server.Register(grpcServer)
	admin.Register(grpcServer, adminBackend{Service: images, puller: puller})

	lis, err := listen(cfg.Socket)
	if err != nil {
		return err
	}
	if err := serveMetrics(ctx, cfg, log, sandboxes, containers); err != nil {
		lis.Close()
		return err
	}
	bus.MarkLive()
	server.SetReady()
	log.Info("berthd serving CRI", "socket", cfg.Socket, "root", cfg.Root, "stateDir", cfg.StateDir,
		"cgroupDriver", cfg.CgroupDriver(), "handlers", runtimes.Names(), "version", cri.Version)

	errc := make(chan error, 1)
	go func() { errc <- grpcServer.Serve(lis) }()
	if n, err := trimStartupMemory(); err != nil {
		log.Debug("giving back start-up memory", "err", err)
	} else {
		log.Debug("gave back start-up memory", "binaryBytes", n)
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Containers keep running: conmon holds them, and the next berthd
	// picks them up from the records.
	log.Info("shutting down; containers keep running")
	bus.Close() // event streams never end by themselves
	done := make(chan struct{})
	go func() { grpcServer.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		grpcServer.Stop()
	}
	os.Remove(cfg.Socket)
	return nil
}

// privateDir makes dir (and missing parents) mode 0700, changing the mode
// of an existing one.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("make %s root-only: %w", dir, err)
	}
	return nil
}

// claimSocket refuses to start when a live berthd answers on the socket and
// removes a stale one left by a crash.
func claimSocket(path string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	// A daemon killed a moment ago can still accept while the kernel tears
	// it down, so only a listener that keeps answering for a second counts
	// as live.
	live := true
	for try := 0; try < 10 && live; try++ {
		conn, err := net.DialTimeout("unix", path, time.Second)
		if err != nil {
			live = false
			break
		}
		conn.Close()
		time.Sleep(100 * time.Millisecond)
	}
	if live {
		return fmt.Errorf("another berthd is already serving %s; stop it first (or use --socket)", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	return nil
}

// listen creates the socket root-owned with mode 0660.
func listen(path string) (net.Listener, error) {
	old := syscall.Umask(0o117)
	lis, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		lis.Close()
		return nil, err
	}
	if err := os.Chown(path, 0, 0); err != nil {
		lis.Close()
		return nil, err
	}
	return lis, nil
}

// janitor removes create results that no retry collected.
func janitor(ctx context.Context, ttl time.Duration, sandboxes *sandbox.Service, containers *container.Service) {
	t := time.NewTicker(ttl/4 + time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			containers.Names().Expire(ctx, ttl)
			sandboxes.Names().Expire(ctx, ttl)
		}
	}
}

// monitorBinary is the per-container monitor: the config's, else
// berth-monitor next to berthd or on PATH, else conmon on PATH (which
// speaks the same protocol; berth-monitor starts in a sixth of its time,
// see cmd/berth-monitor).
func monitorBinary(configured string) string {
	if configured != "" {
		return configured
	}
	if p := helperBinary("berth-monitor"); p != "" {
		return p
	}
	return "conmon"
}

// pauseBinary finds berth-pause next to berthd, else on PATH. Without it,
// only pods that share a PID namespace fail.
func pauseBinary() string { return helperBinary("berth-pause") }

// helperBinary finds one of berth's helper binaries next to berthd, else
// on PATH; "" when there is none.
func helperBinary(name string) string {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return ""
}

// tuneGC halves the Go heap's growth allowance unless GOGC is set: berthd's
// live heap is small (records and buffers), and with the default the heap
// target doubles it. Measured on 20 pods: 1.4 MiB less RSS for a little CPU.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
}
