package container

import (
	"context"
	"errors"
	"time"

	"golang.org/x/sys/unix"

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
	watch := monitorWatch{}
	defer watch.closeAll()
	seen := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		clear(seen)
		for _, c := range s.List() {
			if c.State != Running {
				continue
			}
			seen[c.ID] = true
			if watch.alive(c.ID, func() (int, bool) { return s.monitorPID(c) }) {
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
		watch.forget(seen)
	}
}

// monitorWatch holds a pidfd of each running container's monitor, opened
// once the monitor is found (its pid file and command line read), so that
// each later check is one poll(2): no file read and no allocation. A check
// of 100 containers that read files allocated enough to set off a garbage
// collection every few seconds at rest, and each collection faults the
// binary's tables back in (internal/memtrim).
type monitorWatch map[string]int

// alive says whether container id's monitor runs. find reads its pid
// from the files (false: no monitor runs).
func (w monitorWatch) alive(id string, find func() (int, bool)) bool {
	if fd, ok := w[id]; ok {
		if !pidfdExited(fd) {
			return true
		}
		unix.Close(fd)
		delete(w, id)
		return false
	}
	pid, ok := find()
	if !ok || pid <= 0 {
		return ok // no pid: nothing to watch (see monitorPID)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		// Gone already (ESRCH), or no pidfds (before Linux 5.3): the
		// files decide, this time and the next.
		return !errors.Is(err, unix.ESRCH)
	}
	// The pid may have been reused between find and the open: the fd is
	// kept only if the files still name the same live monitor.
	if again, ok := find(); !ok || again != pid {
		unix.Close(fd)
		return false
	}
	w[id] = fd
	return true
}

// forget closes the fds of containers no longer running.
func (w monitorWatch) forget(running map[string]bool) {
	for id, fd := range w {
		if !running[id] {
			unix.Close(fd)
			delete(w, id)
		}
	}
}

func (w monitorWatch) closeAll() { w.forget(nil) }

// pidfdExited says whether the process of pidfd fd has exited (the fd
// polls readable then).
func pidfdExited(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0
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
	_, alive := s.monitorPID(c)
	return alive
}

// monitorPID returns the pid of container c's monitor and whether it runs;
// a container whose handler is gone from the config counts as monitored,
// with no pid (nothing to settle).
func (s *Service) monitorPID(c *Container) (int, bool) {
	rt, err := s.runtime(c.Runtime)
	if err != nil {
		return 0, true
	}
	return rt.MonitorAlive(s.bundleDir(c.ID))
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
