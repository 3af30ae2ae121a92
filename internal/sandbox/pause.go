package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/cgroups"
	"github.com/berth-project/berth/internal/runtime"
	"github.com/berth-project/berth/internal/spec"
)

// The pause process exists only for pods that share one PID namespace
// between their containers (namespace_options.pid = POD): a PID namespace
// dies with its init, so something must be PID 1. It runs under the pod's
// runtime handler with the pod's id, from an empty read-only rootfs with the
// berth-pause binary bind mounted in. Its namespace is pinned like the
// others, so containers join it by path.

func (s *Service) pauseBundle(p *Sandbox) string {
	return filepath.Join(p.Dir(s.cfg.StateDir), "pause")
}

// hostConfig is the host facts for a pod of runtime handler h: the node's,
// with what the handler changes.
func (s *Service) hostConfig(h runtime.Handler) spec.HostConfig {
	host := s.cfg.Host
	f := h.Features()
	host.RecursiveReadOnlyMounts = f.RecursiveReadOnlyMounts
	host.MountOptions = f.MountOptions
	host.UserNamespaces = f.UserNamespaces
	set := h.SpecSettings()
	host.PrivilegedWithoutHostDevices = set.PrivilegedWithoutHostDevices
	host.PodAnnotations = set.PodAnnotations
	host.ContainerAnnotations = set.ContainerAnnotations
	return host
}

// needsPause says whether pod p has a pause process: when its containers
// share a PID namespace, and always under a handler that runs a pod as one
// sandbox (gVisor), where the pause container is the sandbox the
// containers join.
func (s *Service) needsPause(p *Sandbox) bool {
	if p.SharedPID() {
		return true
	}
	if p.RuntimeHandler == "" {
		return false
	}
	h, err := s.cfg.Runtimes.Handler(p.RuntimeHandler)
	return err == nil && h.Features().PodSandbox
}

// hasPause says whether pod p may have a pause process: it needs one, or
// its pause bundle exists (made under another config). Other pods skip the
// runtime's kill and delete at removal: two runtime execs per pod for
// nothing.
func (s *Service) hasPause(p *Sandbox) bool {
	if s.needsPause(p) {
		return true
	}
	_, err := os.Stat(s.pauseBundle(p))
	return err == nil
}

func (s *Service) pauseCgroupsPath(p *Sandbox) (string, error) {
	return cgroups.ContainerPath(s.cfg.CgroupDriver, p.CgroupParent, p.ID)
}

func (s *Service) startPause(ctx context.Context, p *Sandbox, pod *spec.Pod) (err error) {
	rt, err := s.cfg.Runtimes.Handler(p.RuntimeHandler)
	if err != nil {
		return err
	}
	if s.cfg.PauseBinary == "" {
		return errors.New("pods sharing a PID namespace need berth-pause, which was not found next to berthd or on PATH (run hack/install.sh)")
	}
	cgPath, err := s.pauseCgroupsPath(p)
	if err != nil {
		return err
	}
	bundle := s.pauseBundle(p)
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return err
	}
	if u := pod.UserNS; u != nil {
		// runc, as the pod's root, makes the mount points in it.
		if err := os.Chown(rootfs, int(u.RootUID()), int(u.RootGID())); err != nil {
			return err
		}
	}
	ps, err := spec.GenerateSandbox(&spec.SandboxInput{
		ID:          p.ID,
		Pod:         pod,
		RootfsPath:  rootfs,
		Args:        []string{"/pause"},
		Namespaces:  spec.SandboxNamespaces{Net: p.Namespaces["net"], IPC: p.Namespaces["ipc"], UTS: p.Namespaces["uts"], User: p.Namespaces["user"]},
		CgroupsPath: cgPath,
		Host:        s.hostConfig(rt),
	})
	if err != nil {
		return err
	}
	ps.Mounts = append(ps.Mounts, specs.Mount{
		Destination: "/pause", Type: "bind", Source: s.cfg.PauseBinary,
		Options: []string{"rbind", "ro", "nosuid", "nodev"},
	})
	data, err := json.Marshal(ps)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o600); err != nil {
		return err
	}
	if err := rt.CreateUnmonitored(ctx, p.ID, bundle); err != nil {
		return fmt.Errorf("create pause process: %w", err)
	}
	defer func() {
		if err != nil {
			rt.Delete(context.WithoutCancel(ctx), p.ID, true)
		}
	}()
	if !p.SharedPID() {
		// Only the sandbox of a pod-sandbox runtime: nothing to pin.
		if err := rt.Start(ctx, p.ID, ""); err != nil {
			return fmt.Errorf("start pause process: %w", err)
		}
		return nil
	}
	st, err := rt.State(ctx, p.ID)
	if err != nil {
		return err
	}
	pidns := filepath.Join(p.Dir(s.cfg.StateDir), "pidns")
	if err := s.cfg.mounts.bindNamespace(fmt.Sprintf("/proc/%d/ns/pid", st.Pid), pidns); err != nil {
		return err
	}
	if err := rt.Start(ctx, p.ID, ""); err != nil {
		s.cfg.mounts.unmountAndRemove(pidns)
		return fmt.Errorf("start pause process: %w", err)
	}
	p.Namespaces["pid"] = pidns
	return nil
}

// stopPause ends the pause process and removes it from the runtime; an
// absent one is fine.
func (s *Service) stopPause(ctx context.Context, p *Sandbox) error {
	rt, err := s.cfg.Runtimes.Handler(p.RuntimeHandler)
	if err != nil {
		return nil
	}
	if err := rt.Kill(ctx, p.ID, syscall.SIGKILL, false); err != nil {
		s.log.Debug("killing pause process", "pod", p.ID, "err", err)
	}
	if err := rt.Delete(ctx, p.ID, true); err != nil {
		return err
	}
	if p.CgroupParent != "" {
		cgPath, err := s.pauseCgroupsPath(p)
		if err != nil {
			return nil // never made: the create refused this parent
		}
		return cgroups.Remove(cgPath)
	}
	return nil
}
