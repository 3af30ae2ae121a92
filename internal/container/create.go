package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/cgroups"
	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/events"
	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/names"
	"github.com/berth-project/berth/internal/oci"
	"github.com/berth-project/berth/internal/runtime"
	"github.com/berth-project/berth/internal/sandbox"
)

// Create makes a container in a ready pod, created but not started. A retry
// of a create whose result was never delivered gets that result.
func (s *Service) Create(ctx context.Context, podID string, cfg *runtimeapi.ContainerConfig, podCfg *runtimeapi.PodSandboxConfig) (id string, err error) {
	if cfg == nil {
		return "", errdefs.Invalid("config is required")
	}
	if cfg.GetMetadata() == nil || cfg.GetMetadata().GetName() == "" {
		return "", errdefs.Invalid("config.metadata.name is required")
	}
	if cfg.GetImage().GetImage() == "" {
		return "", errdefs.Invalid("config.image.image is required")
	}
	pod, err := s.cfg.Sandboxes.Get(podID)
	if err != nil {
		return "", err
	}
	if pod.State != sandbox.Ready {
		return "", errdefs.Precondition(fmt.Sprintf("pod sandbox %s is not ready (stopped); create a new pod", podID))
	}
	if err := oci.ValidateContainerConfig(cfg, pod.LogDirectory); err != nil {
		return "", err
	}
	logPath, err := resolveLogPath(pod.LogDirectory, cfg.GetLogPath())
	if err != nil {
		return "", err
	}
	img, err := s.cfg.Images.Get(cfg.GetImage().GetImage())
	if err != nil {
		if errdefs.IsNotFound(err) {
			return "", errdefs.NotFound(fmt.Sprintf("image %q not found: pull it first", cfg.GetImage().GetImage()))
		}
		return "", err
	}
	if podCfg == nil {
		if podCfg, err = pod.PodConfig(); err != nil {
			return "", err
		}
	}

	key := Key(podID, cfg.GetMetadata())
	ticket, prior, err := s.names.Acquire(ctx, key)
	if err != nil {
		return "", err
	}
	if prior != "" {
		s.log.Info("handing undelivered container to retry", "container", prior, "pod", podID, "name", key)
		return prior, nil
	}
	id = names.NewID()
	defer func() {
		ticket.Done(id, err, ctx.Err() == nil, func(ctx context.Context, id string) {
			s.log.Warn("removing container whose create result was never collected", "container", id)
			s.Remove(ctx, id)
		})
	}()
	c, err := s.create(ctx, id, key, pod, podCfg, cfg, img, logPath)
	if err != nil {
		id = ""
		return "", err
	}
	s.log.Info("container created", "container", id, "pod", podID, "name", c.Name)
	return id, nil
}

// resolveLogPath joins the pod's log directory and the container's log path
// and refuses paths that leave the directory.
func resolveLogPath(dir, rel string) (string, error) {
	if rel == "" {
		return "", nil
	}
	if dir == "" {
		return "", errdefs.Invalid(fmt.Sprintf("config.log_path %q is set but the pod has no log_directory", rel))
	}
	if filepath.IsAbs(rel) {
		return "", errdefs.Invalid(fmt.Sprintf("config.log_path %q must be relative to the pod's log_directory", rel))
	}
	p := filepath.Join(dir, rel)
	if !strings.HasPrefix(p, filepath.Clean(dir)+string(filepath.Separator)) {
		return "", errdefs.Invalid(fmt.Sprintf("config.log_path %q escapes the pod's log_directory %s", rel, dir))
	}
	return p, nil
}

func (s *Service) create(ctx context.Context, id, key string, pod *sandbox.Sandbox, podCfg *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig, img *image.Image, logPath string) (c *Container, err error) {
	rt, err := s.runtime(pod.RuntimeHandler)
	if err != nil {
		return nil, err
	}
	cgPath, err := cgroups.ContainerPath(s.cfg.CgroupDriver, pod.CgroupParent, id)
	if err != nil {
		return nil, err
	}
	bundle := s.bundleDir(id)
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		return nil, fmt.Errorf("create bundle dir: %w", err)
	}
	created := false
	defer func() {
		if err != nil {
			s.cleanup(context.WithoutCancel(ctx), id, rt, created, cgPath)
		}
	}()
	layers := s.cfg.Images.LayerDirs(img)
	if err := s.cfg.rootfs.Prepare(s.snapshotDir(id), s.rootfs(id), layers); err != nil {
		return nil, err
	}

	targetNS, err := s.targetPIDNamespace(pod.ID, cfg)
	if err != nil {
		return nil, err
	}
	hostnameFile, hostsFile, resolvFile, shm := pod.Files(s.cfg.StateDir)
	spec, err := oci.GenerateContainerSpec(ctx, &oci.ContainerInput{
		ID:                 id,
		Config:             cfg,
		Sandbox:            podCfg,
		SandboxID:          pod.ID,
		Image:              imageInfo(img, cfg.GetImage().GetImage()),
		RootfsPath:         s.rootfs(id),
		Namespaces:         oci.SandboxNamespaces{Net: pod.Namespaces["net"], IPC: pod.Namespaces["ipc"], UTS: pod.Namespaces["uts"], PID: pod.Namespaces["pid"]},
		TargetPIDNamespace: targetNS,
		HostsPath:          hostsFile,
		ResolvPath:         resolvFile,
		HostnamePath:       hostnameFile,
		ShmPath:            shm,
		CgroupsPath:        cgPath,
		Host:               s.hostConfig(rt),
	})
	if err != nil {
		return nil, err
	}
	if o := cfg.GetLinux().GetSecurityContext().GetSelinuxOptions(); oci.SELinuxRequested(o) {
		// Spec generation refused them where SELinux is on.
		s.log.Info("container selinux_options ignored: SELinux is not enabled on this node", "container", id, "name", key,
			"user", o.GetUser(), "role", o.GetRole(), "type", o.GetType(), "level", o.GetLevel())
	}
	if err := writeSpec(filepath.Join(bundle, "config.json"), spec); err != nil {
		return nil, err
	}
	if logPath != "" {
		if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
			return nil, fmt.Errorf("create log dir: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("container create abandoned: %w", err)
	}
	created = true
	proc, err := rt.Create(ctx, runtime.CreateOptions{
		ID:        id,
		BundleDir: bundle,
		LogPath:   logPath,
		Terminal:  cfg.GetTty(),
		Stdin:     cfg.GetStdin(),
		StdinOnce: cfg.GetStdinOnce(),
	})
	if err != nil {
		return nil, err
	}
	c = &Container{
		ID:          id,
		PodID:       pod.ID,
		Key:         key,
		Name:        cfg.GetMetadata().GetName(),
		Attempt:     cfg.GetMetadata().GetAttempt(),
		State:       Created,
		CreatedAt:   time.Now().UnixNano(),
		Pid:         proc.Pid,
		Image:       cfg.GetImage().GetImage(),
		ImageID:     img.ID,
		ImageRef:    img.ID,
		Layers:      img.ChainIDs,
		Labels:      cfg.GetLabels(),
		Annotations: cfg.GetAnnotations(),
		LogPath:     logPath,
		Runtime:     pod.RuntimeHandler,
		StopSignal:  stopSignal(cfg, img),
		CgroupsPath: cgPath,
	}
	if c.Config, err = protojson.Marshal(cfg); err != nil {
		return nil, err
	}
	if r := cfg.GetLinux().GetResources(); r != nil {
		if c.Resources, err = protojson.Marshal(r); err != nil {
			return nil, err
		}
	}
	if user := containerUser(spec); user != nil {
		if c.User, err = protojson.Marshal(user); err != nil {
			return nil, err
		}
	}
	s.exitChan(id)
	if err := s.publish(c); err != nil {
		return nil, err
	}
	s.emit(events.ContainerCreated, c)
	return c, nil
}

// targetPIDNamespace is the PID namespace a container with
// namespace_options.pid = TARGET joins (kubectl debug --target): that of
// the target container's init process, which must be a running container
// of the same pod. Other modes need none.
func (s *Service) targetPIDNamespace(podID string, cfg *runtimeapi.ContainerConfig) (string, error) {
	const field = "linux.security_context.namespace_options.target_id"
	o := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if o.GetPid() != runtimeapi.NamespaceMode_TARGET {
		return "", nil
	}
	id := o.GetTargetId()
	if id == "" {
		return "", errdefs.Invalid(field + " is required with PID namespace mode TARGET")
	}
	t, err := s.Get(id)
	if err != nil {
		return "", errdefs.NotFound(fmt.Sprintf("%s: target container %q not found", field, id))
	}
	if t.PodID != podID {
		return "", errdefs.Invalid(fmt.Sprintf("%s: target container %s belongs to pod %s, not to %s; a container can only join the PID namespace of a container in its own pod", field, id, t.PodID, podID))
	}
	if t.State != Running || t.Pid <= 0 {
		return "", errdefs.Precondition(fmt.Sprintf("%s: target container %s is %s, not running; its PID namespace can only be joined while it runs", field, id, t.State))
	}
	p := fmt.Sprintf("/proc/%d/ns/pid", t.Pid)
	if _, err := os.Stat(p); err != nil {
		// Exited a moment ago; its exit is not recorded yet.
		return "", errdefs.Precondition(fmt.Sprintf("%s: target container %s has no process any more (%v)", field, id, err))
	}
	return p, nil
}

// cleanup undoes a failed or abandoned create, and removes leftovers found at
// start. Every step tolerates what is already gone.
func (s *Service) cleanup(ctx context.Context, id string, rt runtime.Handler, created bool, cgroupsPath string) {
	var errs []error
	if created && rt != nil {
		if err := rt.Delete(ctx, id, true); err != nil {
			errs = append(errs, err)
		}
	}
	if cgroupsPath != "" {
		if err := cgroups.Remove(cgroupsPath); err != nil {
			errs = append(errs, err)
		}
	}
	if rt != nil {
		if pid, alive := rt.MonitorAlive(s.bundleDir(id)); alive {
			killPid(pid)
		}
	}
	if err := s.cfg.rootfs.Remove(s.snapshotDir(id), s.rootfs(id)); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(s.bundleDir(id)); err != nil {
		errs = append(errs, err)
	}
	if rt != nil {
		if err := rt.RemoveExit(id); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		s.log.Error("cleaning up container", "container", id, "err", err)
	}
}

func writeSpec(path string, spec any) error {
	data, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("encode OCI spec: %w", err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write OCI spec: %w", err)
	}
	return nil
}
