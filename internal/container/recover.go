package container

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/events"
	"github.com/berth-project/berth/internal/names"
	"github.com/berth-project/berth/internal/runtime"
)

// New loads container records and reconciles them with the host: exits that
// happened while berthd was down are recorded and containers the runtime no
// longer knows are marked exited. What is on disk or in the runtime without
// a record (a crash in the middle of a create) is left for RemoveOrphans,
// which the caller runs once every owner of runtime state is loaded.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.rootfs == nil {
		cfg.rootfs = overlayRootfs{}
	}
	s := &Service{
		cfg:        cfg,
		log:        cfg.Logger,
		names:      names.New("container"),
		containers: map[string]*Container{},
		exited:     map[string]chan struct{}{},
		layerUse:   map[string]int{},
	}
	// Bundles (with the mounted rootfs) and writable layers are reached
	// through these: root-only, also when an older berthd made them
	// traversable (CVE-2021-41103's class).
	for _, d := range []string{filepath.Join(cfg.StateDir, "containers"), filepath.Join(cfg.Root, "containers")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	var err error
	if s.records, err = openTable(cfg.Store, cfg); err != nil {
		return nil, err
	}
	rows, err := s.records.Load(func(id string, m *recordMeta, st *recordStatus) error {
		c, err := fromRecord(id, m, st)
		if err != nil {
			return err
		}
		s.containers[id] = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load container records: %w", err)
	}
	for _, c := range s.containers {
		for _, l := range c.Layers {
			s.layerUse[l]++
		}
		s.names.Restore(c.Key, c.ID)
		// Images mounted as image volumes stay unremovable.
		for _, m := range c.Config.GetMounts() {
			if ref := m.GetImage().GetImageRef(); ref != "" {
				if _, err := s.cfg.Images.HoldImage(ref, c.ID); err != nil {
					s.log.Warn("image of an image volume is gone", "container", c.ID, "image", ref, "err", err)
				}
			}
		}
		ch := make(chan struct{})
		if c.State == Exited {
			close(ch)
		}
		s.exited[c.ID] = ch
	}
	if s.quarantined, err = s.records.QuarantinedIDs(); err != nil {
		return nil, fmt.Errorf("load container records: %w", err)
	}
	if n := len(s.quarantined); n > 0 {
		s.log.Warn("container records in quarantine: their containers, if any, are left alone", "count", n)
	}
	loaded := time.Since(start)
	if err := s.reconcile(ctx); err != nil {
		return nil, err
	}
	s.log.Info("containers recovered", "count", len(rows), "load", loaded, "took", time.Since(start))
	return s, nil
}

// Names exposes the reservation registry for the uncollected-result janitor.
func (s *Service) Names() *names.Registry { return s.names }

func (s *Service) reconcile(ctx context.Context) error {
	if left := waitRuntimeCommands(s.cfg.Runtimes.Handlers()); len(left) > 0 {
		s.log.Warn("runtime commands of the previous berthd still run; reconciling anyway", "pids", left, "waited", settleTimeout)
	}
	// One list per runtime rather than one state call per container: a
	// restart with many containers must not fork the runtime for each.
	lists := s.listRuntimes(ctx)
	for _, c := range s.List() {
		if c.State == Exited {
			continue
		}
		rt, err := s.runtime(c.Runtime)
		if err != nil {
			s.markLost(c, err.Error())
			continue
		}
		if _, ok, _ := rt.ReadExit(c.ID, s.bundleDir(c.ID)); ok {
			s.handleExit(c.ID)
			continue
		}
		var st *runtime.State
		if listed, ok := lists[c.Runtime][c.ID]; ok {
			st = &listed
		} else {
			// Not listed (or no list): ask about this one, as a list
			// skips containers whose state it cannot load.
			st, err = rt.State(ctx, c.ID)
		}
		switch {
		case errdefs.IsNotFound(err):
			s.markLost(c, "the OCI runtime no longer knows this container (host rebooted?)")
		case err != nil:
			return fmt.Errorf("reconcile container %s: %w", c.ID, err)
		case st.Status == "stopped":
			// Stopped but conmon left no exit file: conmon died with it.
			s.markLost(c, "container stopped while its monitor was gone; exit code unknown")
		case c.State == Created && st.Status == runtime.StatusRunning:
			// berthd died between the runtime's start and the record's
			// update: the container runs, so say so, or a retried start
			// fails and kubelet sees CREATED forever.
			s.markStarted(c)
		case c.State == Created && st.Status == runtime.StatusCreated && s.finishCutStart(rt, c):
			// berthd died in a start after the container's process began
			// and before runc heard of it (the exec fifo): kubelet, which
			// makes a new container for a CREATED one, would run two.
			s.markStarted(c)
		default:
			if !s.cfg.rootfs.IsMounted(s.rootfs(c.ID)) {
				s.log.Warn("running container's rootfs is not mounted", "container", c.ID)
			}
		}
	}
	// Kept for RemoveOrphans, which runs next, once the other owners of
	// runtime state are loaded.
	s.startLists = lists
	return nil
}

// listRuntimes lists each runtime handler's containers, by handler name
// and id; a handler whose list fails is left out.
func (s *Service) listRuntimes(ctx context.Context) map[string]map[string]runtime.State {
	lists := map[string]map[string]runtime.State{}
	for _, rt := range s.cfg.Runtimes.Handlers() {
		states, err := rt.List(ctx)
		if err != nil {
			s.log.Warn("listing runtime containers", "runtime", rt.Name(), "err", err)
			continue
		}
		name := rt.Name()
		lists[name] = make(map[string]runtime.State, len(states))
		for _, st := range states {
			lists[name][st.ID] = st
		}
	}
	return lists
}

// cutStartFinisher is a runtime handler that can finish a start a kill
// of berthd cut short (runtime's conmonHandler, for runc).
type cutStartFinisher interface {
	FinishCutStart(id string) (bool, error)
}

// finishCutStart says container c's start was cut short after its process
// began, and finishes it in the runtime.
func (s *Service) finishCutStart(rt runtime.Handler, c *Container) bool {
	f, ok := rt.(cutStartFinisher)
	if !ok {
		return false
	}
	done, err := f.FinishCutStart(c.ID)
	if err != nil {
		s.log.Warn("finishing a start cut short by a crash", "container", c.ID, "err", err)
	}
	return done
}

// markStarted records a start the runtime did but the record missed. The
// moment is unknown; now is the first time berthd can vouch for it.
func (s *Service) markStarted(c *Container) {
	nc := *c
	nc.State = Running
	nc.StartedAt = time.Now().UnixNano()
	if err := s.publish(&nc); err != nil {
		s.log.Error("recording started container", "container", c.ID, "err", err)
		return
	}
	s.emit(events.ContainerStarted, &nc)
	s.log.Warn("container was started before a crash; recorded as running", "container", c.ID)
}

// markLost records a container whose exit cannot be known, as containerd
// does: exited with code 255 and reason Unknown.
func (s *Service) markLost(c *Container, msg string) {
	nc := *c
	nc.State = Exited
	nc.ExitCode = 255
	nc.Reason = "Unknown"
	nc.Message = msg
	nc.FinishedAt = time.Now().UnixNano()
	if nc.StartedAt == 0 {
		nc.StartedAt = nc.FinishedAt
	}
	if err := s.publish(&nc); err != nil {
		s.log.Error("recording lost container", "container", c.ID, "err", err)
	} else {
		s.emit(events.ContainerStopped, &nc)
	}
	s.markExited(c.ID)
	s.log.Warn("container lost", "container", c.ID, "reason", msg)
}

// RemoveOrphans removes container dirs and runtime state that no container
// record owns and that ownedElsewhere does not claim (other runtime state,
// such as pods' pause processes, is not this service's to judge): what a
// crash in the middle of a create left. It uses the runtimes' lists taken
// at start (New), listing again when called later.
func (s *Service) RemoveOrphans(ctx context.Context, ownedElsewhere func(id string) bool) error {
	lists := s.startLists
	s.startLists = nil
	if lists == nil {
		lists = s.listRuntimes(ctx)
	}
	known := func(id string) bool {
		if s.quarantined[id] {
			// Its record is unreadable, not absent: leave it to the operator.
			return true
		}
		if _, err := s.Get(id); err == nil {
			return true
		}
		return ownedElsewhere != nil && ownedElsewhere(id)
	}
	orphans := map[string]bool{}
	for _, dir := range []string{filepath.Join(s.cfg.StateDir, "containers"), filepath.Join(s.cfg.Root, "containers")} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if !known(e.Name()) {
				orphans[e.Name()] = true
			}
		}
	}
	for _, states := range lists {
		for id := range states {
			if !known(id) {
				orphans[id] = true
			}
		}
	}
	for id := range orphans {
		s.log.Warn("removing half-created container left by a crash", "container", id)
		// Not a plain runtime delete: the crashed berthd's conmon may still
		// be creating it (see ReapOrphan).
		s.cfg.Runtimes.ReapOrphan(ctx, id, s.bundleDir(id))
		s.cleanup(ctx, id, nil, false, "")
	}
	return nil
}
