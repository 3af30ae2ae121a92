package container

import (
	"context"
	"time"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/runtime"
)

// monitorCheckInterval is how often the conmons of running containers are
// checked. kubelet relists every second; a lost exit shows within this.
const monitorCheckInterval = 2 * time.Second

// lostMonitorMessage is the status message of a container that stopped
// after its conmon died: conmon is what records exit codes.
const lostMonitorMessage = "the container's monitor (conmon) died before the container stopped; its exit code is unknown"

// watchMonitors notices running containers whose conmon died (killed by
// hand or by the OOM killer). conmon is what records a container's exit, so
// without this check a container that exits after its conmon is gone would
// be reported running for ever. Such a container is recorded as exited
// (code 255, reason Unknown) once the runtime says it stopped; while it
// still runs it is reported running, as it is.
func (s *Service) watchMonitors(ctx context.Context) {
	t := time.NewTicker(monitorCheckInterval)
	defer t.Stop()
	warned := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		seen := map[string]bool{}
		for _, c := range s.List() {
			if c.State != Running {
				continue
			}
			seen[c.ID] = true
			if s.monitorAlive(c) {
				continue
			}
			if s.settleOrphaned(ctx, c.ID) {
				continue
			}
			if !warned[c.ID] {
				warned[c.ID] = true
				s.log.Warn("container's conmon is gone while the container runs; its exit will be recorded with an unknown exit code", "container", c.ID, "pod", c.PodID)
			}
		}
		for id := range warned {
			if !seen[id] {
				delete(warned, id)
			}
		}
	}
}

// settleOrphaned records the exit of container id if its conmon is gone
// and the container has stopped. It returns true when the exit is recorded
// (by conmon's exit file, written before it died, or as lost), false while
// the container still runs or its conmon is alive after all.
func (s *Service) settleOrphaned(ctx context.Context, id string) bool {
	// conmon may have written the exit file just before it exited.
	s.handleExit(id)
	unlock := s.lock(id)
	defer unlock()
	c, err := s.Get(id)
	if err != nil || c.State == Exited {
		return true
	}
	rt, err := s.runtime(c.Runtime)
	if err != nil {
		return false
	}
	if _, alive := rt.MonitorAlive(s.bundleDir(id)); alive {
		return false
	}
	st, err := rt.State(ctx, id)
	if !stoppedWithoutMonitor(st, err) {
		return false
	}
	s.markLost(c, lostMonitorMessage)
	return true
}

// stoppedWithoutMonitor says whether the runtime's answer about a container
// whose conmon is gone means it no longer runs: the runtime reports it
// stopped, or no longer knows it. Any other error says nothing.
func stoppedWithoutMonitor(st *runtime.State, err error) bool {
	if err != nil {
		return errdefs.IsNotFound(err)
	}
	return st != nil && st.Status == runtime.StatusStopped
}

// monitorAlive says whether container c's monitor runs; a container whose
// handler is gone from the config counts as monitored (nothing to settle).
func (s *Service) monitorAlive(c *Container) bool {
	rt, err := s.runtime(c.Runtime)
	if err != nil {
		return true
	}
	_, alive := rt.MonitorAlive(s.bundleDir(c.ID))
	return alive
}

// waitExit waits up to d for the exit of container id to be recorded. It
// returns true once it is, also early when the container's conmon is gone
// and the container has stopped (see settleOrphaned): nothing would record
// that exit, and the caller would wait out d for nothing.
func (s *Service) waitExit(ctx context.Context, id string, exited <-chan struct{}, d time.Duration) (bool, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-exited:
			return true, nil
		case <-timer.C:
			return false, nil
		case <-ctx.Done():
			return false, ctx.Err()
		case <-tick.C:
			if c, err := s.Get(id); (err != nil || !s.monitorAlive(c)) && s.settleOrphaned(ctx, id) {
				return true, nil
			}
		}
	}
}
