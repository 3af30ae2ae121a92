package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/names"
	"github.com/berth-project/berth/internal/spec"
)

// A prepared pod: the network, UTS and IPC namespaces of the next pod,
// pinned, and the network attached to the pod network, ahead of the next
// RunPodSandbox, under the id that pod will get. Making the namespace and
// attaching it (veth pair, bridge port, IP lease, addresses, routes) is
// most of a RunPodSandbox, ~5 ms of ~7 on the project's machines; a pod
// that takes the prepared one skips both (and sets only its hostname),
// and the next is prepared in the background once the pod start calls
// are over (PrepareAhead), after the create and start a pod start waits
// on, or a second after the RunPodSandbox if none is.
//
// When the last pod made had a pause process of berthd's own (a shared
// PID namespace), the next is prepared with one too, started in the
// prepared namespaces and isolated, in berthd's cgroup until the take:
// its fork, exec and isolation were 2-3 ms of such a pod's
// RunPodSandbox. A pod that shares its PID namespace takes it, moved
// into the pod's cgroup; another pod ends it.
//
// Only a network whose set-up depends on nothing but the pod's id and
// namespace can be prepared: the built-in network in-process, for pods
// without host ports (PreparableNetwork says which). The prepared dir
// lives under <state>/prepared/<id> until a pod takes it, then is
// renamed to the pod's dir (the namespace pin moves with it), so a pod
// dir is always a pod's. Close tears the prepared one down, and the next
// berthd tears down what a crash left (recover).

// PreparableNetwork is a Network that can attach a namespace before its
// pod is known. Preparable says whether a pod with cfg gets the same
// network set-up as any other pod, nothing in cfg changing it; only such
// pods take a prepared network, and only while Preparable(nil) holds are
// networks prepared. Prepare attaches the namespace at netns as Setup
// would for such a pod with that id, and fails for any other network (one
// that changed since Preparable); Unprepare releases what a Prepare of id
// made, any part of it, and nothing else (no plugin runs for an id that
// never had an ADD). A pod that took a prepared network is torn down by
// Teardown as any pod.
type PreparableNetwork interface {
	Network
	Preparable(cfg *runtimeapi.PodSandboxConfig) bool
	Prepare(ctx context.Context, id, netns string) (ips []string, err error)
	Unprepare(id, netns string) error
}

// preparedDir holds prepared networks under the state dir.
const preparedDir = "prepared"

// prepareTimeout bounds one preparation.
const prepareTimeout = time.Minute

// preparedPod is a pod's namespaces made ahead of it.
type preparedPod struct {
	id  string
	ips []string
	// pause is the pause process started in them, or nil.
	pause *pauseRecord
}

func (s *Service) preparedPath(id string) string {
	return filepath.Join(s.cfg.StateDir, preparedDir, id)
}

// preparer holds at most one prepared pod.
type preparer struct {
	mu        sync.Mutex
	next      *preparedPod
	preparing bool
	closed    bool
	cancel    context.CancelFunc // of the preparation in flight
	timer     *time.Timer        // refillPreparedLater's
	timerSet  bool
	failedAt  time.Time      // the last failed preparation
	done      sync.WaitGroup // the preparation in flight
	// pause says the last pod made had a pause process of berthd's own,
	// so the next is prepared with one.
	pause atomic.Bool
}

// prepareRetry is how long after a failed preparation the next is tried:
// on an exhausted subnet each would make and pin a namespace for nothing.
const prepareRetry = 10 * time.Second

// preparable returns the network when networks can be prepared now.
func (s *Service) preparable() PreparableNetwork {
	n, ok := s.cfg.Network.(PreparableNetwork)
	if !ok || !n.Preparable(nil) {
		return nil
	}
	return n
}

// takePrepared returns the prepared network for a pod, or nil: none is
// ready, or the pod cannot take one (host network, user namespace, host
// ports, a network other than the built-in one).
func (s *Service) takePrepared(pod *spec.Pod) *preparedPod {
	n, ok := s.cfg.Network.(PreparableNetwork)
	if !ok || pod.UserNS != nil ||
		pod.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtimeapi.NamespaceMode_NODE {
		return nil
	}
	s.prep.mu.Lock()
	defer s.prep.mu.Unlock()
	if s.prep.next == nil || !n.Preparable(pod.Config) {
		return nil
	}
	pn := s.prep.next
	s.prep.next = nil
	return pn
}

// refillAfter is how long after a RunPodSandbox the next network is
// prepared when no PrepareAhead comes first.
const refillAfter = time.Second

// refillPreparedLater has the next network prepared refillAfter from
// now, unless PrepareAhead comes first.
func (s *Service) refillPreparedLater() {
	s.prep.mu.Lock()
	defer s.prep.mu.Unlock()
	if s.prep.timerSet || s.prep.closed {
		return
	}
	s.prep.timerSet = true
	s.prep.timer = time.AfterFunc(refillAfter, s.PrepareAhead)
}

// PrepareAhead prepares the next network if none is ready: berthd calls
// it once the pod start calls (RunPodSandbox, CreateContainer,
// StartContainer) are over.
func (s *Service) PrepareAhead() {
	s.prep.mu.Lock()
	if s.prep.timerSet {
		s.prep.timer.Stop()
		s.prep.timerSet = false
	}
	s.prep.mu.Unlock()
	s.refillPrepared()
}

// refillPrepared prepares the next pod in the background unless one is
// ready or in the making; one ready without a pause process gets one when
// the last pod had one.
func (s *Service) refillPrepared() {
	if s.preparable() == nil {
		// The network changed (a CNI config was installed): what was
		// prepared for the built-in one is of no use.
		s.discardNext()
		return
	}
	s.prep.mu.Lock()
	defer s.prep.mu.Unlock()
	if s.prep.closed || s.prep.preparing ||
		(!s.prep.failedAt.IsZero() && time.Since(s.prep.failedAt) < prepareRetry) {
		return
	}
	build := s.prepare
	if pn := s.prep.next; pn != nil {
		if pn.pause != nil || !s.prep.pause.Load() {
			return
		}
		// Out of reach of a take until it has its pause process.
		s.prep.next = nil
		build = func(ctx context.Context) (*preparedPod, error) { return s.addPause(ctx, pn), nil }
	}
	s.prep.preparing = true
	ctx, cancel := context.WithTimeout(context.Background(), prepareTimeout)
	s.prep.cancel = cancel
	s.prep.done.Add(1)
	go func() {
		defer s.prep.done.Done()
		defer cancel()
		pn, err := build(ctx)
		s.prep.mu.Lock()
		s.prep.preparing = false
		s.prep.cancel = nil
		closed := s.prep.closed
		if err == nil && !closed {
			s.prep.next = pn
		}
		if err != nil {
			s.prep.failedAt = time.Now()
		} else {
			s.prep.failedAt = time.Time{}
		}
		s.prep.mu.Unlock()
		switch {
		case err != nil:
			// The next pod sets its network up itself, and tries again.
			s.log.Warn("preparing a pod network ahead", "err", err)
		case closed:
			s.discardPrepared(pn)
		}
	}()
}

// prepare pins a pod's namespaces under the prepared dir, attaches the
// network one as a pod with no config would be, and starts a pause process
// in them when the last pod had one. On failure nothing is left.
func (s *Service) prepare(ctx context.Context) (_ *preparedPod, err error) {
	n := s.preparable()
	if n == nil {
		return nil, errors.New("the pod network cannot be prepared ahead")
	}
	id := names.NewID()
	dir := s.preparedPath(id)
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return nil, err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if derr := s.removePrepared(id); derr != nil {
				s.log.Error("cleaning up a failed network preparation", "pod", id, "err", derr)
			}
		}
	}()
	// The hostname is set at the take (takeNamespaces).
	paths, err := s.cfg.mounts.pinNamespaces(dir, "", []nsKind{nsNet, nsUTS, nsIPC}, nil)
	if err != nil {
		return nil, err
	}
	ips, err := n.Prepare(ctx, id, paths["net"])
	if err != nil {
		return nil, err
	}
	pp := &preparedPod{id: id, ips: ips}
	if s.prep.pause.Load() {
		pp = s.addPause(ctx, pp)
	}
	s.log.Debug("pod prepared", "pod", id, "ips", ips, "pause", pp.pause != nil)
	return pp, nil
}

// addPause starts a pause process in prepared pod pn's namespaces. Without
// one pn is still of use: the pod that takes it starts its own, as without
// preparation.
func (s *Service) addPause(ctx context.Context, pn *preparedPod) *preparedPod {
	dir := s.preparedPath(pn.id)
	ns := map[string]string{}
	for _, k := range []string{"net", "ipc", "uts"} {
		ns[k] = filepath.Join(dir, k+"ns")
	}
	rec, err := s.startPauseIn(ctx, dir, pn.id, "", ns)
	if err != nil {
		s.log.Warn("starting a pause process ahead of a pod", "pod", pn.id, "err", err)
		return pn
	}
	return &preparedPod{id: pn.id, ips: pn.ips, pause: &rec}
}

// couldTakePrepared says pod p (its namespaces pinned) is of a kind that
// takes a prepared pod, host ports aside: what decides which kind the next
// pod is prepared as.
func couldTakePrepared(p *Sandbox) bool {
	return !p.HostNetwork && p.Namespaces["user"] == ""
}

// wantsPreparedPause says pod p, whose pause process is berthd's own when
// direct, would have taken a prepared one: the next pod is prepared with
// one when the last pod that could take a prepared pod would have.
func wantsPreparedPause(p *Sandbox, direct bool) bool {
	return direct && !p.HostIPC
}

// lastHadPause says the ready pod made last that could take a prepared
// pod would have taken a pause process with it: what a restarted berthd
// prepares the next pod with.
func (s *Service) lastHadPause() bool {
	var last *Sandbox
	for _, p := range s.pods {
		if p.State == Ready && couldTakePrepared(p) && (last == nil || p.CreatedAt > last.CreatedAt) {
			last = p
		}
	}
	return last != nil && wantsPreparedPause(last, s.hasDirectPause(last))
}

// takeNamespaces makes pod p's namespaces the prepared ones in its dir
// (pn's, renamed): it sets the hostname, and lets go of the IPC namespace
// for a pod in the host's.
func (s *Service) takeNamespaces(p *Sandbox, pn *preparedPod) error {
	dir := p.Dir(s.cfg.StateDir)
	p.Namespaces["net"] = filepath.Join(dir, "netns")
	p.Namespaces["uts"] = filepath.Join(dir, "utsns")
	if err := s.cfg.mounts.setHostname(p.Namespaces["uts"], p.Hostname); err != nil {
		return err
	}
	ipc := filepath.Join(dir, "ipcns")
	if p.HostIPC {
		return s.cfg.mounts.unpinNamespaces(map[string]string{"ipc": ipc})
	}
	p.Namespaces["ipc"] = ipc
	return nil
}

// takePause gives pod p the pause process prepared with pn when p has one
// of berthd's own (direct) in the prepared namespaces, moved into its
// cgroup, and says so; otherwise it ends it. p's dir is pn's.
func (s *Service) takePause(p *Sandbox, pn *preparedPod, direct bool) (bool, error) {
	dir := p.Dir(s.cfg.StateDir)
	if direct && !p.HostIPC && s.pauser.Alive(pn.pause.PauseProc) {
		cg, err := s.pauseCgroupsPath(p)
		if err != nil {
			return false, err
		}
		// Recorded first, so that a crash after the move removes the cgroup.
		rec := pauseRecord{PauseProc: pn.pause.PauseProc, Cgroup: cg}
		if err := writePauseRecord(dir, rec); err != nil {
			return false, err
		}
		err = s.pauser.Move(rec.PauseProc, cg)
		if err == nil {
			p.Namespaces["pid"] = filepath.Join(dir, "pidns")
			return true, nil
		}
		if s.pauser.Alive(rec.PauseProc) {
			return false, fmt.Errorf("move the pause process into the pod cgroup: %w", err)
		}
		// It exited meanwhile: removed below with its record and cgroup.
	}
	// Not this pod's (its PID namespace is its containers', or its IPC
	// namespace the host's), or it exited: the pod starts its own if any.
	if err := s.stopPauseIn(dir, p.ID, ""); err != nil {
		return false, err
	}
	return false, s.cfg.mounts.unpinNamespaces(map[string]string{"pid": filepath.Join(dir, "pidns")})
}

// discardPrepared tears a prepared pod down.
func (s *Service) discardPrepared(pn *preparedPod) {
	if err := s.removePrepared(pn.id); err != nil {
		s.log.Error("removing a prepared pod network", "pod", pn.id, "err", err)
	}
}

// removePrepared releases what a preparation of id made, any part of it:
// the pause process, the network, the namespace pins, then the dir. The
// dir stays when a release fails, for the next berthd's start to try
// again.
func (s *Service) removePrepared(id string) error {
	dir := s.preparedPath(id)
	netns := filepath.Join(dir, "netns")
	errs := []error{s.stopPauseIn(dir, id, "")}
	if n, ok := s.cfg.Network.(PreparableNetwork); ok {
		errs = append(errs, n.Unprepare(id, netns))
	}
	errs = append(errs, s.cfg.mounts.unpinNamespaces(map[string]string{
		"net": netns, "uts": filepath.Join(dir, "utsns"), "ipc": filepath.Join(dir, "ipcns"), "pid": filepath.Join(dir, "pidns"),
	}))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove prepared pod network dir: %w", err)
	}
	return nil
}

// recoverPrepared tears down the prepared pods a crashed berthd left.
func (s *Service) recoverPrepared() {
	entries, err := os.ReadDir(filepath.Join(s.cfg.StateDir, preparedDir))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.log.Error("reading prepared pod networks", "err", err)
		}
		return
	}
	for _, e := range entries {
		if err := s.removePrepared(e.Name()); err != nil {
			s.log.Error("removing a prepared pod left by an earlier berthd", "pod", e.Name(), "err", err)
		}
	}
}

// Close tears down the prepared pod, after the preparation in flight.
// Pods are not touched: they outlive berthd.
func (s *Service) Close() {
	s.prep.mu.Lock()
	s.prep.closed = true
	if s.prep.timerSet {
		s.prep.timer.Stop()
		s.prep.timerSet = false
	}
	if s.prep.cancel != nil {
		s.prep.cancel()
	}
	s.prep.mu.Unlock()
	s.prep.done.Wait()
	s.discardNext()
}

// discardNext tears down the prepared pod that is ready, if any.
func (s *Service) discardNext() {
	s.prep.mu.Lock()
	pn := s.prep.next
	s.prep.next = nil
	s.prep.mu.Unlock()
	if pn != nil {
		s.discardPrepared(pn)
	}
}
