package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/cgroups"
	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/events"
	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/metrics"
	"github.com/berth-project/berth/internal/names"
	"github.com/berth-project/berth/internal/runtime"
	"github.com/berth-project/berth/internal/sandbox"
	"github.com/berth-project/berth/internal/snapshot"
	"github.com/berth-project/berth/internal/spec"
)

// Draft is a container being created, as a SpecAdjuster sees it: its OCI
// spec is generated, and nothing has been handed to the runtime yet.
type Draft struct {
	ID     string
	Pod    *sandbox.Sandbox
	Config *runtimeapi.ContainerConfig // validated
	Image  *image.Image
	// ImageName is the image as the client asked for it.
	ImageName string
	CreatedAt int64
	// Spec is the generated spec, which the adjuster changes in place.
	Spec *specs.Spec
}

// SpecAdjuster changes a draft's spec before the runtime creates the
// container (device injection, node plugins). An error fails the create,
// which is then undone; the error is returned as is.
type SpecAdjuster func(ctx context.Context, d *Draft) error

// CreateOption changes how Create makes one container.
type CreateOption func(*createOptions)

type createOptions struct {
	adjust SpecAdjuster
}

// WithSpecAdjuster has adjust run on the generated spec before the
// runtime sees it; the container's bundle, exec template and user come
// from the adjusted spec.
func WithSpecAdjuster(adjust SpecAdjuster) CreateOption {
	return func(o *createOptions) { o.adjust = adjust }
}

// Create makes a container in a ready pod, created but not started. A retry
// of a create whose result was never delivered gets that result (and runs
// no adjuster).
//
// The pod's config is the one it was run with, checked then; the request's
// copy (podCfg) is not used, so it is not checked again either.
func (s *Service) Create(ctx context.Context, podID string, cfg *runtimeapi.ContainerConfig, podCfg *runtimeapi.PodSandboxConfig, opts ...CreateOption) (id string, err error) {
	var o createOptions
	for _, opt := range opts {
		opt(&o)
	}
	pod, err := s.cfg.Sandboxes.Get(podID)
	if err != nil {
		return "", err
	}
	if pod.State != sandbox.Ready {
		return "", errdefs.Precondition(fmt.Sprintf("pod sandbox %s is not ready (stopped); create a new pod", podID))
	}
	rt, err := s.runtime(pod.RuntimeHandler)
	if err != nil {
		return "", err
	}
	steps := metrics.StartSteps("CreateContainer")
	host := s.hostConfig(rt)
	v, err := spec.ValidateContainer(cfg, spec.ValidatedPod(pod.Config), &host)
	if err != nil {
		return "", err
	}
	// The lease keeps a concurrent RemoveImage from deleting the layers
	// until publish has counted them as in use (or the create failed).
	img, lease, err := s.cfg.Images.LeaseImage(cfg.GetImage().GetImage())
	if err != nil {
		if errdefs.IsNotFound(err) {
			return "", errdefs.NotFound(fmt.Sprintf("image %q not found: pull it first", cfg.GetImage().GetImage()))
		}
		return "", err
	}
	defer lease.Release()
	if img.Artifact != nil {
		return "", errdefs.Invalid(fmt.Sprintf("image %q is an OCI artifact (%s), not a runnable image: it can only be mounted as an image volume (mounts[].image)",
			cfg.GetImage().GetImage(), img.Artifact.Type))
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
		ticket.Done(ctx, id, err, func(ctx context.Context, id string) {
			s.log.Warn("removing container whose create result was never collected", "container", id)
			s.Remove(ctx, id)
		})
	}()
	steps.Done("validate")
	c, err := s.create(ctx, id, key, pod, v, img, o, steps)
	if err != nil {
		id = ""
		return "", err
	}
	s.log.Info("container created", "container", id, "pod", podID, "name", c.Name)
	steps.Log(ctx, s.log, "container create steps", slog.String("container", id))
	return id, nil
}

func (s *Service) create(ctx context.Context, id, key string, pod *sandbox.Sandbox, v *spec.Container, img *image.Image, o createOptions, steps *metrics.Steps) (c *Container, err error) {
	cfg, logPath := v.Config, v.LogPath
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
	var idmap *snapshot.IDMap
	if u := v.Pod.UserNS; u != nil {
		if pod.Namespaces["user"] == "" {
			return nil, errdefs.Precondition(fmt.Sprintf("pod sandbox %s has no user namespace (made by an older berthd?); create a new pod", pod.ID))
		}
		idmap = &snapshot.IDMap{UsernsPath: pod.Namespaces["user"], UID: u.RootUID(), GID: u.RootGID()}
		// runc, as the pod's root, must reach the rootfs mount point,
		// which so lives outside the root-only state dir.
		if _, err := s.cfg.UsernsDir.Make(id, u.RootUID(), u.RootGID(), false); err != nil {
			return nil, fmt.Errorf("make the rootfs mount point of a container in a user namespace: %w", err)
		}
	}
	layers := s.cfg.Images.LayerDirs(img)
	if err := s.cfg.rootfs.Prepare(s.snapshotDir(id), s.rootfs(id), layers, idmap); err != nil {
		return nil, err
	}
	volumes, volumeIDs, err := s.mountImageVolumes(id, v, idmap)
	if err != nil {
		return nil, err
	}
	steps.Done("rootfs")

	targetNS, err := s.targetPIDNamespace(pod.ID, cfg)
	if err != nil {
		return nil, err
	}
	hostnameFile, hostsFile, resolvFile, shm := pod.Files(s.cfg.StateDir)
	ociSpec, err := spec.GenerateContainer(ctx, &spec.ContainerInput{
		ID:                 id,
		Container:          v,
		SandboxID:          pod.ID,
		Image:              imageInfo(img, cfg.GetImage().GetImage()),
		RootfsPath:         s.rootfs(id),
		Namespaces:         spec.SandboxNamespaces{Net: pod.Namespaces["net"], IPC: pod.Namespaces["ipc"], UTS: pod.Namespaces["uts"], PID: pod.Namespaces["pid"], User: pod.Namespaces["user"]},
		TargetPIDNamespace: targetNS,
		ImageVolumeSources: volumes,
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
	if o := cfg.GetLinux().GetSecurityContext().GetSelinuxOptions(); spec.SELinuxRequested(o) {
		// Validation refused them where SELinux is on.
		s.log.Info("container selinux_options ignored: SELinux is not enabled on this node", "container", id, "name", key,
			"user", o.GetUser(), "role", o.GetRole(), "type", o.GetType(), "level", o.GetLevel())
	}
	createdAt := time.Now().UnixNano()
	if o.adjust != nil {
		d := &Draft{ID: id, Pod: pod, Config: cfg, Image: img, ImageName: cfg.GetImage().GetImage(), CreatedAt: createdAt, Spec: ociSpec}
		if err := o.adjust(ctx, d); err != nil {
			return nil, err
		}
	}
	// The bundle's config.json is the spec as adjusted: what the runtime
	// runs, and what Spec reports later.
	if err := writeSpec(filepath.Join(bundle, "config.json"), ociSpec); err != nil {
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
	steps.Done("spec")
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
	steps.Done("runtime_create")
	c = &Container{
		ID:          id,
		PodID:       pod.ID,
		CreatedAt:   createdAt,
		ImageID:     img.ID,
		ImageRef:    img.ID,
		Layers:      img.ChainIDs,
		LogPath:     logPath,
		Runtime:     pod.RuntimeHandler,
		StopSignal:  stopSignal(v, img),
		CgroupsPath: cgPath,
		Config:      withImageVolumeRefs(cfg, volumeIDs),
		User:        containerUser(ociSpec),
		State:       Created,
		Pid:         proc.Pid,
		exec:        newExecTemplate(ociSpec),
	}
	c.Resources = c.Config.GetLinux().GetResources()
	c.fillFromConfig()
	s.exitChan(id)
	if err := s.publishNew(c); err != nil {
		return nil, err
	}
	steps.Done("record")
	s.emit(events.ContainerCreated, c)
	return c, nil
}

// imageVolumesDir holds the mounted images of a container's image volumes.
func (s *Service) imageVolumesDir(id string) string {
	return filepath.Join(s.bundleDir(id), "imagevols")
}

// mountImageVolumes mounts the image of each of the container's image
// volumes read-only under its bundle, each held (HoldImage) so that it is
// not removed while mounted, and returns their host paths at their sub
// paths and their image ids by mount index. In a user namespace the
// images' layers are idmapped as the rootfs's are.
func (s *Service) mountImageVolumes(id string, v *spec.Container, idmap *snapshot.IDMap) ([]string, map[int]string, error) {
	if len(v.ImageVolumes) == 0 {
		return nil, nil, nil
	}
	var sources []string
	ids := map[int]string{}
	for i, iv := range v.ImageVolumes {
		field := fmt.Sprintf("mounts[%d]", iv.Mount)
		img, err := s.cfg.Images.HoldImage(iv.Image, id)
		if err != nil {
			if errdefs.IsNotFound(err) {
				return nil, nil, errdefs.NotFound(fmt.Sprintf("%s.image %q not found: pull it first", field, iv.Image))
			}
			return nil, nil, fmt.Errorf("%s.image %q: %w", field, iv.Image, err)
		}
		target := filepath.Join(s.imageVolumesDir(id), strconv.Itoa(i))
		if err := s.cfg.rootfs.MountImage(target, s.cfg.Images.LayerDirs(img), idmap, target+".idmap"); err != nil {
			return nil, nil, fmt.Errorf("%s: mount image %s: %w", field, img.ID, err)
		}
		src := target
		if iv.SubPath != "" {
			if src, err = snapshot.ResolveIn(target, iv.SubPath); err != nil {
				if img.Artifact != nil {
					return nil, nil, errdefs.Invalid(fmt.Sprintf("%s.image_sub_path %q does not exist in OCI artifact %s (its files: %s)",
						field, iv.SubPath, iv.Image, strings.Join(img.Artifact.Paths(), ", ")))
				}
				return nil, nil, errdefs.Invalid(fmt.Sprintf("%s.image_sub_path %q does not exist in image %s: %v", field, iv.SubPath, iv.Image, err))
			}
		}
		sources = append(sources, src)
		ids[iv.Mount] = img.ID
	}
	return sources, ids, nil
}

// unmountImageVolumes detaches every mounted image of the container's
// image volumes and lets go of the images.
func (s *Service) unmountImageVolumes(id string) error {
	defer s.cfg.Images.Unhold(id)
	entries, err := os.ReadDir(s.imageVolumesDir(id))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, e := range entries {
		if err := s.cfg.rootfs.Unmount(filepath.Join(s.imageVolumesDir(id), e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// withImageVolumeRefs is the config kept in the record: the request's,
// with each image volume's image id as its image_ref, which
// ContainerStatus reports.
func withImageVolumeRefs(cfg *runtimeapi.ContainerConfig, ids map[int]string) *runtimeapi.ContainerConfig {
	c := proto.Clone(cfg).(*runtimeapi.ContainerConfig)
	for i, id := range ids {
		c.Mounts[i].Image.ImageRef = id
	}
	return c
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
	id := o.GetTargetId() // set: checked by spec.ValidateContainer
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
		if err := deleteStopped(ctx, rt, id); err != nil {
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
	} else if err := s.cfg.UsernsDir.Remove(id); err != nil {
		errs = append(errs, err)
	}
	if err := s.unmountImageVolumes(id); err != nil {
		// Read-only mounts: RemoveAll below cannot harm the images.
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

// Spec returns the OCI spec a container was created with, adjustments
// included, read from its bundle (which lives until the container is
// removed).
func (s *Service) Spec(id string) (*specs.Spec, error) {
	data, err := os.ReadFile(filepath.Join(s.bundleDir(id), "config.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, errdefs.NotFound(fmt.Sprintf("container %q has no OCI spec (removed)", id))
		}
		return nil, fmt.Errorf("read OCI spec: %w", err)
	}
	var sp specs.Spec
	if err := json.Unmarshal(data, &sp); err != nil {
		return nil, fmt.Errorf("decode OCI spec of container %s: %w", id, err)
	}
	return &sp, nil
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
