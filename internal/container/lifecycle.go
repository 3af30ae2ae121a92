package container

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/events"
	"github.com/berth-project/berth/internal/metrics"
	"github.com/berth-project/berth/internal/runtime"
	"github.com/berth-project/berth/internal/spec"
)

// startTimeout bounds the runtime's start, which does not end with the
// caller's context (see Start).
const startTimeout = time.Minute

// Start starts a created container.
func (s *Service) Start(ctx context.Context, id string) error {
	unlock := s.lock(id)
	defer unlock()
	c, err := s.Get(id)
	if err != nil {
		return err
	}
	if c.State != Created {
		return errdefs.Precondition(fmt.Sprintf("container %s is %s, not created; only a created container can be started", id, c.State))
	}
	rt, err := s.runtime(c.Runtime)
	if err != nil {
		return err
	}
	steps := metrics.StartSteps("StartContainer")
	// Stamp before the start: a process that exits at once must not look
	// as if it finished before it started.
	startedAt := time.Now().UnixNano()
	// The start runs to its end even if the caller goes away: runc start
	// killed between reading the exec fifo and removing it leaves the
	// container running while runc still says "created", and every later
	// start then blocks for ever on that fifo. startTimeout still bounds
	// a runtime that hangs.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), startTimeout)
	defer cancel()
	if err := rt.Start(sctx, id, s.bundleDir(id)); err != nil {
		// A start cut short by a berthd crash may have been finished by
		// the orphaned runtime process after the restart's reconcile: the
		// retry then finds it running, which is what it asked for.
		if st, serr := rt.State(sctx, id); serr != nil || st.Status != runtime.StatusRunning {
			return err
		}
		s.log.Warn("container already running at start; an earlier start finished it", "container", id)
	}
	steps.Done("runtime_start")
	nc := *c
	nc.State = Running
	nc.StartedAt = startedAt
	if err := s.publish(&nc); err != nil {
		return err
	}
	steps.Done("record")
	s.emit(events.ContainerStarted, &nc)
	s.log.Info("container started", "container", id, "pod", c.PodID)
	steps.Log(ctx, s.log, "container start steps", slog.String("container", id))
	return nil
}

// PrepareAhead has the runtime handlers make again what they keep ready
// for the next container (runtime.Registry: a spare monitor), if it was
// taken. The pod layer calls it once the pod start calls are over.
func (s *Service) PrepareAhead() {
	if a, ok := s.cfg.Runtimes.(interface{ PrepareAhead() }); ok {
		a.PrepareAhead()
	}
}

// Stop stops a running container: its stop signal (the CRI config's, else
// the image's, else SIGTERM), then SIGKILL once timeout has passed. Unknown or already stopped
// containers are fine.
func (s *Service) Stop(ctx context.Context, id string, timeout time.Duration) error {
	c, err := s.Get(id)
	if err != nil {
		return nil
	}
	if c.State == Exited {
		return nil
	}
	rt, err := s.runtime(c.Runtime)
	if err != nil {
		return err
	}
	exited := s.exitChan(id)
	if c.State == Created {
		// Never started: nothing to signal gracefully.
		timeout = 0
	}
	if timeout > 0 {
		sig := spec.StopSignal(c.StopSignal)
		if err := rt.Kill(ctx, id, sig, false); err != nil && !errdefs.IsNotFound(err) {
			s.log.Debug("stop signal not delivered", "container", id, "err", err)
		}
		if done, err := s.waitExit(ctx, id, exited, timeout); done || err != nil {
			return err
		}
	}
	if err := rt.Kill(ctx, id, syscall.SIGKILL, true); err != nil && !errdefs.IsNotFound(err) {
		s.log.Debug("SIGKILL not delivered", "container", id, "err", err)
	}
	if done, err := s.waitExit(ctx, id, exited, 10*time.Second); done || err != nil {
		return err
	}
	// The exit watcher should have fired; settle from the host.
	s.handleExit(id)
	if c, err := s.Get(id); err == nil && c.State == Exited {
		return nil
	}
	// No exit file: conmon is gone. If the runtime agrees the process is
	// gone too, the exit code is lost but the container is stopped.
	if st, err := rt.State(ctx, id); stoppedWithoutMonitor(st, err) {
		if c, err := s.Get(id); err == nil {
			s.markLost(c, lostMonitorMessage)
		}
		return nil
	}
	return fmt.Errorf("container %s did not exit after SIGKILL", id)
}

// Remove removes a container, forcibly if it still runs. Unknown ids are fine.
func (s *Service) Remove(ctx context.Context, id string) error {
	c, err := s.Get(id)
	if err != nil {
		return nil
	}
	if c.State == Running || c.State == Created {
		if err := s.Stop(ctx, id, 0); err != nil {
			return err
		}
	}
	unlock := s.lock(id)
	defer unlock()
	if cur, err := s.Get(id); err == nil {
		c = cur // as the stop above (or the exit watcher) left it
	} else {
		return nil // removed meanwhile
	}
	rt, _ := s.runtime(c.Runtime)
	// Past this point the removal finishes even if the caller has gone
	// (it may have waited for the lock): a runtime delete cut by an
	// expired context would leave the runtime's state behind a removed
	// record. The runtime's own default timeout still bounds it. The
	// record says whether the exit handling deleted it already.
	s.cleanup(context.WithoutCancel(ctx), id, rt, !c.RuntimeDeleted, c.CgroupsPath)
	if err := s.records.Delete(id); err != nil {
		return err
	}
	s.forget(c)
	s.names.Release(c.Key, id)
	s.emit(events.ContainerDeleted, c)
	s.log.Info("container removed", "container", id, "pod", c.PodID)
	return nil
}

// StopPod stops every container of a pod, in parallel, with no grace
// period: kubelet stops containers itself (with their grace periods) before
// it stops the pod.
func (s *Service) StopPod(ctx context.Context, podID string) error {
	cs := s.podContainers(podID)
	errc := make(chan error, len(cs))
	for _, c := range cs {
		go func() { errc <- s.Stop(ctx, c.ID, 0) }()
	}
	var errs []error
	for range cs {
		errs = append(errs, <-errc)
	}
	return errors.Join(errs...)
}

// RemovePod removes every container of a pod.
func (s *Service) RemovePod(ctx context.Context, podID string) error {
	var errs []error
	for _, c := range s.podContainers(podID) {
		errs = append(errs, s.Remove(ctx, c.ID))
	}
	return errors.Join(errs...)
}

// handleExit records the exit of a container from conmon's exit file. It is
// called by the exit watcher and at start for exits missed while berthd was
// down; repeated calls are harmless.
func (s *Service) handleExit(id string) {
	unlock := s.lock(id)
	defer unlock()
	c, err := s.Get(id)
	if err != nil || c.State == Exited {
		return
	}
	rt, err := s.runtime(c.Runtime)
	if err != nil {
		s.log.Error("reading container exit", "container", id, "err", err)
		return
	}
	exit, ok, err := rt.ReadExit(id, s.bundleDir(id))
	if err != nil {
		s.log.Error("reading container exit", "container", id, "err", err)
		return
	}
	if !ok {
		return
	}
	nc := *c
	nc.State = Exited
	nc.ExitCode = int32(exit.Code)
	nc.FinishedAt = exit.At.UnixNano()
	nc.Pid = 0
	switch {
	case exit.OOM:
		nc.Reason = ReasonOOMKilled
	case exit.Code == 0:
		nc.Reason = ReasonCompleted
	default:
		nc.Reason = ReasonError
	}
	if nc.StartedAt == 0 {
		// Killed before it was started: CRI wants started_at <= finished_at.
		nc.StartedAt = nc.FinishedAt
	}
	if err := s.publish(&nc); err != nil {
		s.log.Error("recording container exit", "container", id, "err", err)
		return
	}
	s.emit(events.ContainerStopped, &nc)
	s.markExited(id)
	s.log.Info("container exited", "container", id, "pod", c.PodID, "exitCode", exit.Code, "reason", nc.Reason)
	// Free the runtime's state and the cgroup now; the rootfs stays until
	// RemoveContainer so logs and the writable layer can still be read.
	// The record then says so, and the removal makes no runtime call; a
	// failed delete is retried there.
	if err := deleteStopped(context.Background(), rt, id); err != nil {
		s.log.Warn("deleting exited container from runtime", "container", id, "err", err)
		return
	}
	dc := nc
	dc.RuntimeDeleted = true
	if err := s.publish(&dc); err != nil {
		s.log.Warn("recording the runtime delete of an exited container", "container", id, "err", err)
	}
}

// UpdateResources applies new resource limits to a container.
func (s *Service) UpdateResources(ctx context.Context, id string, res *runtimeapi.LinuxContainerResources) error {
	unlock := s.lock(id)
	defer unlock()
	c, err := s.Get(id)
	if err != nil {
		return err
	}
	if res == nil {
		return errdefs.Invalid("linux resources are required")
	}
	if c.State == Exited {
		return errdefs.Precondition(fmt.Sprintf("container %s has exited; resources cannot be updated", id))
	}
	rt, err := s.runtime(c.Runtime)
	if err != nil {
		return err
	}
	update, err := spec.Resources(res, spec.ResourceOptions{SwapLimit: s.cfg.Host.SwapLimit, Hugetlb: s.cfg.Host.Hugetlb})
	if err != nil {
		return err
	}
	if err := rt.Update(ctx, id, update); err != nil {
		return err
	}
	nc := *c
	nc.Resources = proto.Clone(res).(*runtimeapi.LinuxContainerResources)
	return s.publish(&nc)
}

// ReopenLog makes conmon reopen the container's log file (after kubelet has
// renamed it for rotation).
func (s *Service) ReopenLog(ctx context.Context, id string) error {
	c, err := s.Get(id)
	if err != nil {
		return err
	}
	if c.State != Running {
		return errdefs.Precondition(fmt.Sprintf("container %s is not running", id))
	}
	if c.LogPath == "" {
		return errdefs.Precondition(fmt.Sprintf("container %s was created without a log_path: there is no log to reopen", id))
	}
	rt, err := s.runtime(c.Runtime)
	if err != nil {
		return err
	}
	return rt.ReopenLog(ctx, s.bundleDir(id), c.LogPath)
}

// Watch follows conmon's exit files, and checks that running containers
// still have their conmon, until ctx ends.
func (s *Service) Watch(ctx context.Context) error {
	go s.watchMonitors(ctx)
	// Each exit on its own goroutine: handleExit runs the runtime's delete,
	// and one runtime that hangs must not hold up the exits of the others.
	return s.cfg.Runtimes.WatchExits(ctx, func(id string) { go s.handleExit(id) })
}

func killPid(pid int) {
	if pid > 1 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// deleteStopped removes a container that has stopped from its runtime.
// A plain delete does it and also kills what a container sharing the pod's
// PID namespace left in its cgroup (runc's destroy); `delete --force`
// would too, but runc 1.2 and later then sleep at least 100 ms before
// looking whether the container died, and that was most of
// RemoveContainer's time (measured: 141 against 32 ms, runc 1.5.3). Where
// the plain delete is refused (the container runs after all), force.
func deleteStopped(ctx context.Context, rt runtime.Handler, id string) error {
	if err := rt.Delete(ctx, id, false); err == nil {
		return nil
	}
	return rt.Delete(ctx, id, true)
}
