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
// dies with its init, so something must be PID 1. Its namespace is pinned
// like the others, so containers join it by path.
//
// Under a runc-style handler with the cgroupfs driver berthd starts it
// itself (pauseproc_linux.go: no runtime round trip), records it in the pod
// dir's pause.json and kills it at stop. Under a pod-sandbox handler
// (gVisor), and under the systemd cgroup driver (whose scopes the runtime
// makes), it runs under the pod's runtime handler with the pod's id, from
// an empty read-only rootfs with the berth-pause binary bind mounted in
// (its bundle, pause/, says so).

// OwnsRuntimeID says whether id names runtime state of this service: a
// pod's pause process runs under the pod's id (a pod whose record is in
// quarantine counts: what it holds is left alone). The pod layer asks it
// before removing runtime state no container owns as a crash's leftover.
func (s *Service) OwnsRuntimeID(id string) bool {
	_, err := s.Get(id)
	return err == nil || s.Quarantined(id)
}

func (s *Service) pauseBundle(p *Sandbox) string {
	return filepath.Join(p.Dir(s.cfg.StateDir), "pause")
}

// hostConfig is the host facts for a pod of runtime handler h: the node's,
// with what the handler changes.
func (s *Service) hostConfig(h runtime.Handler) spec.HostConfig {
	return runtime.SpecHost(h, s.cfg.Host)
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

// hasPause says whether pod p may have a pause process: its pause record
// (berthd's own) or its pause bundle (the runtime's) exists. startPause
// makes the bundle before the runtime's create and stopPause removes it
// after the runtime's delete, so a pod without one (never had a pause
// process, or it is stopped already) costs no runtime call at stop or
// removal; one made under another config or by an older berthd (always
// the runtime's) is still found.
func (s *Service) hasPause(p *Sandbox) bool {
	return s.hasDirectPause(p) || s.hasPauseBundle(p)
}

func (s *Service) hasPauseBundle(p *Sandbox) bool {
	_, err := os.Stat(s.pauseBundle(p))
	return err == nil
}

// directPause says whether pod p's pause process is started by berthd
// itself rather than by its runtime handler.
func (s *Service) directPause(p *Sandbox) bool {
	if !p.SharedPID() || s.cfg.CgroupDriver == cgroups.DriverSystemd {
		return false
	}
	if p.Namespaces["user"] != "" {
		// A pod in a user namespace: its PID namespace must belong to
		// that user namespace, which the runtime's pause container joins.
		return false
	}
	h, err := s.cfg.Runtimes.Handler(p.RuntimeHandler)
	return err == nil && !h.Features().PodSandbox
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
		// runc, as the pod's root, must reach the rootfs and makes the
		// mount points in it: it lives outside the root-only state dir,
		// owned by the pod's root. The bundle's rootfs dir stays unused.
		if rootfs, err = s.cfg.UsernsDir.Make(p.ID, u.RootUID(), u.RootGID(), true); err != nil {
			return fmt.Errorf("make the pause rootfs of a pod in a user namespace: %w", err)
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
		// Undone here, the pod's teardown has nothing left to delete; if
		// the delete fails, the bundle stays and the teardown retries.
		if err != nil && rt.Delete(context.WithoutCancel(ctx), p.ID, true) == nil {
			os.RemoveAll(bundle)
			s.cfg.UsernsDir.Remove(p.ID)
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

// stopPause ends the pause process and removes it from the runtime (a
// forced delete kills it first; an absent one is fine), then its bundle,
// which tells later stops and removals that nothing is left to do.
func (s *Service) stopPause(ctx context.Context, p *Sandbox) error {
	if err := s.stopDirectPause(p); err != nil {
		return err
	}
	// A pod of a crash mid-create (no record, no handler) has its runtime
	// pause reaped by the pod layer's orphan policy instead.
	if p.RuntimeHandler == "" || !s.hasPauseBundle(p) {
		return nil
	}
	rt, err := s.cfg.Runtimes.Handler(p.RuntimeHandler)
	if err != nil {
		return nil
	}
	// Kill first, although a forced delete kills too: runc's delete --force
	// of a running container polls for its death in 100 ms sleeps, so the
	// extra exec makes StopPodSandbox ~100 ms faster (measured: bench-peer,
	// shared-PID pods, 2026-12-06).
	if err := rt.Kill(ctx, p.ID, syscall.SIGKILL, false); err != nil {
		s.log.Debug("killing pause process", "pod", p.ID, "err", err)
	}
	if err := rt.Delete(ctx, p.ID, true); err != nil {
		return err
	}
	if err := s.cfg.UsernsDir.Remove(p.ID); err != nil {
		return err
	}
	if err := os.RemoveAll(s.pauseBundle(p)); err != nil {
		return fmt.Errorf("remove pause bundle: %w", err)
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
