package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/berth-project/berth/internal/cgroups"
)

// pauseRecord is what replaces the runtime's state for a pause process
// berthd started itself: pause.json in the pod dir. It is written before
// the start with the cgroup alone (so a crash right after leaves nothing
// the next teardown would not find) and again with the process. It exists
// exactly while such a pause process or its cgroup may.
type pauseRecord struct {
	PauseProc
	Cgroup string `json:"cgroup"`
}

const pauseRecordFile = "pause.json"

// kubeletSandboxOOMScoreAdj is the pause process's oom_score_adj, as
// kubelet gives sandboxes.
const kubeletSandboxOOMScoreAdj = -998

func (s *Service) pauseRecordPath(p *Sandbox) string {
	return pauseRecordAt(p.Dir(s.cfg.StateDir))
}

// pauseRecordAt is the pause record in dir: a pod dir, or a prepared
// pod's (prepared.go).
func pauseRecordAt(dir string) string {
	return filepath.Join(dir, pauseRecordFile)
}

func (s *Service) hasDirectPause(p *Sandbox) bool {
	_, err := os.Stat(s.pauseRecordPath(p))
	return err == nil
}

func writePauseRecord(dir string, rec pauseRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := os.WriteFile(pauseRecordAt(dir), b, 0o600); err != nil {
		return fmt.Errorf("record pause process: %w", err)
	}
	return nil
}

// readPauseRecord returns the pause record in dir; ok is false without one.
func readPauseRecord(dir string) (rec pauseRecord, ok bool, err error) {
	path := pauseRecordAt(dir)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return rec, false, nil
	}
	if err != nil {
		return rec, true, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, true, fmt.Errorf("pause record %s: %w", path, err)
	}
	return rec, true, nil
}

// startDirectPause starts pod p's pause process without the runtime, in
// its cgroup and the pinned namespaces ns, and pins its PID namespace,
// whose pin it returns. What it did is undone when it fails. It runs
// beside the pod's network setup, so it reads nothing of p that changes.
func (s *Service) startDirectPause(ctx context.Context, p *Sandbox, ns map[string]string) (pidns string, err error) {
	cg, err := s.pauseCgroupsPath(p)
	if err != nil {
		return "", err
	}
	dir := p.Dir(s.cfg.StateDir)
	if _, err := s.startPauseIn(ctx, dir, p.ID, cg, ns); err != nil {
		return "", err
	}
	return filepath.Join(dir, "pidns"), nil
}

// startPauseIn starts the pause process of pod id in dir (its pod dir, or
// the dir it is prepared in), in cgroup cg (none: berthd's, until Move)
// and the pinned namespaces ns; it records it in dir and pins its PID
// namespace at dir/pidns. What it did is undone when it fails.
func (s *Service) startPauseIn(ctx context.Context, dir, id, cg string, ns map[string]string) (rec pauseRecord, err error) {
	rec = pauseRecord{Cgroup: cg}
	if err := writePauseRecord(dir, rec); err != nil {
		return rec, err
	}
	defer func() {
		if err != nil {
			if rec.PID != 0 {
				// Killed here, in case the record with its pid was not written.
				if kerr := s.pauser.Kill(rec.PauseProc); kerr != nil {
					s.log.Error("killing the pause process of a failed pod create", "pod", id, "err", kerr)
				}
			}
			if serr := s.stopPauseIn(dir, id, cg); serr != nil {
				s.log.Error("removing the pause process of a failed pod create", "pod", id, "err", serr)
			}
		}
	}()
	adj := kubeletSandboxOOMScoreAdj
	if m := s.cfg.Host.OOMScoreAdjMin; m != nil && *m > adj {
		adj = *m
	}
	rec.PauseProc, err = s.pauser.Start(ctx, PauseRequest{
		Dir: dir, Namespaces: ns, Cgroup: cg, OOMScoreAdj: adj,
		Exited: func() { s.pauseExited(id) },
	})
	if err != nil {
		return rec, fmt.Errorf("start pause process: %w", err)
	}
	if err := writePauseRecord(dir, rec); err != nil {
		return rec, err
	}
	if err := s.cfg.mounts.bindNamespace(fmt.Sprintf("/proc/%d/ns/pid", rec.PID), filepath.Join(dir, "pidns")); err != nil {
		return rec, err
	}
	return rec, nil
}

// startDirectPauseAsync starts pod p's pause process beside what create
// does next (the network: CNI's ADD takes longer than the pause process's
// start); wait returns its outcome and records its PID namespace in p.
// wait must be called, also when create fails, before p is torn down.
func (s *Service) startDirectPauseAsync(ctx context.Context, p *Sandbox) (wait func() error) {
	ns := map[string]string{}
	for _, k := range []string{"net", "ipc", "uts"} {
		if path := p.Namespaces[k]; path != "" {
			ns[k] = path
		}
	}
	type result struct {
		pidns string
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		pidns, err := s.startDirectPause(ctx, p, ns)
		ch <- result{pidns, err}
	}()
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() {
			r := <-ch
			if err = r.err; err == nil {
				p.Namespaces["pid"] = r.pidns
			}
		})
		return err
	}
}

// stopDirectPause kills pod p's pause process (and so every process left
// in its PID namespace), removes its cgroup, then its record. A record
// without a pid (a crash between the start and the record) has the
// process found by its command line and environment. Safe to repeat.
func (s *Service) stopDirectPause(p *Sandbox) error {
	cg := ""
	if p.CgroupParent != "" {
		cg, _ = s.pauseCgroupsPath(p)
	}
	return s.stopPauseIn(p.Dir(s.cfg.StateDir), p.ID, cg)
}

// stopPauseIn is stopDirectPause for the pause process recorded in dir,
// of pod id; cg is its cgroup when the record names none.
func (s *Service) stopPauseIn(dir, id, cg string) error {
	rec, ok, err := readPauseRecord(dir)
	if !ok {
		return nil
	}
	if err != nil {
		s.log.Warn("unreadable pause record; finding the pause process by its environment", "pod", id, "err", err)
		rec = pauseRecord{}
	}
	procs := []PauseProc{rec.PauseProc}
	if rec.PID == 0 {
		procs = s.findPauses()[id]
	}
	for _, pp := range procs {
		if err := s.pauser.Kill(pp); err != nil {
			return err
		}
	}
	if rec.Cgroup != "" {
		cg = rec.Cgroup
	}
	if cg != "" {
		if err := cgroups.Remove(cg); err != nil {
			return err
		}
	}
	if err := os.Remove(pauseRecordAt(dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove pause record: %w", err)
	}
	return nil
}

// findPauses returns the running pause processes started for pods (in
// their pod dirs) or prepared ahead of one (prepared.go), by pod id: one
// prepared ahead keeps the prepared dir in its environment once a pod
// took it.
func (s *Service) findPauses() map[string][]PauseProc {
	found := s.pauser.Find(filepath.Join(s.cfg.StateDir, "sandboxes"))
	for id, procs := range s.pauser.Find(s.preparedPath("")) {
		found[id] = append(found[id], procs...)
	}
	return found
}

// killOrphanPauses ends, at start, the pause processes no pod owns: those
// of pods without a record (a crash mid-create), those prepared ahead of a
// pod (the prepared pods are torn down next) and any that is not the one
// its pod's record names. Pods in quarantine are left alone.
func (s *Service) killOrphanPauses() {
	for id, procs := range s.findPauses() {
		if s.quarantined[id] {
			continue
		}
		var keep PauseProc
		if p, ok := s.pods[id]; ok && p.State == Ready {
			if rec, ok, err := readPauseRecord(p.Dir(s.cfg.StateDir)); ok && err == nil {
				keep = rec.PauseProc
			}
		}
		for _, pp := range procs {
			if pp == keep {
				continue
			}
			s.log.Warn("killing a pause process no pod owns", "pod", id, "pid", pp.PID)
			if err := s.pauser.Kill(pp); err != nil {
				s.log.Error("killing a pause process no pod owns", "pod", id, "pid", pp.PID, "err", err)
			}
		}
	}
}

// directPauseGone says pod p has a pause process of berthd's own that no
// longer runs: its PID namespace holds no process, so containers can no
// longer join it.
func (s *Service) directPauseGone(p *Sandbox) bool {
	rec, ok, err := readPauseRecord(p.Dir(s.cfg.StateDir))
	return ok && err == nil && rec.PID != 0 && !s.pauser.Alive(rec.PauseProc)
}

// pauseExited handles the exit of a ready pod's pause process that berthd
// did not ask for (a process of the pod sent it SIGTERM, or the OOM killer
// chose it): its PID namespace is empty for good, so the pod can run no
// container any more. As containerd does, the pod becomes NOTREADY, and
// its stop is finished (network, namespaces), so that kubelet makes a
// new one.
func (s *Service) pauseExited(id string) {
	unlock := s.lock(id)
	defer unlock()
	p, err := s.Get(id)
	if err != nil || p.State != Ready || !s.directPauseGone(p) {
		return
	}
	s.log.Warn("pod's pause process (PID 1 of its shared PID namespace) exited; marking pod not ready", "pod", id)
	s.finishStop(p)
	np := *p
	np.State = NotReady
	np.Namespaces = nil
	if err := s.publish(&np); err != nil {
		s.log.Error("recording a pod whose pause process exited", "pod", id, "err", err)
	}
}
