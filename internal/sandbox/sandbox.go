// Package sandbox runs pod sandboxes: the pinned network, IPC and UTS
// namespaces that a pod's containers share, the pod's /dev/shm, and its
// hostname, hosts and resolv.conf files. There is no infra container: the
// namespaces are kept alive by bind mounts under the state dir.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/cgroups"
	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/host"
	"github.com/berth-project/berth/internal/metrics"
	"github.com/berth-project/berth/internal/names"
	"github.com/berth-project/berth/internal/runtime"
	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/store"
	"github.com/berth-project/berth/internal/usernsdir"
)

// State is a pod's lifecycle state as CRI knows it.
type State string

const (
	Ready    State = "ready"
	NotReady State = "notready"
)

// SharedPID says the pod's containers share one PID namespace, held by a
// pause process.
func (s *Sandbox) SharedPID() bool { return s.PIDMode == runtimeapi.NamespaceMode_POD.String() }

// Dir is the pod's directory under the state dir.
func (s *Sandbox) Dir(stateDir string) string { return filepath.Join(stateDir, "sandboxes", s.ID) }

// Files returns the host paths of the pod files containers bind mount.
func (s *Sandbox) Files(stateDir string) (hostname, hosts, resolv, shm string) {
	d := s.Dir(stateDir)
	shm = filepath.Join(d, "shm")
	if s.HostIPC {
		shm = "/dev/shm"
	}
	files := d
	if s.BoundedFiles {
		files = filepath.Join(d, podFilesDir)
	}
	return filepath.Join(files, "hostname"), filepath.Join(files, "hosts"), filepath.Join(files, "resolv.conf"), shm
}

func idMaps(in []specs.LinuxIDMapping) []host.IDMap {
	out := make([]host.IDMap, len(in))
	for i, m := range in {
		out[i] = host.IDMap{ContainerID: m.ContainerID, HostID: m.HostID, Size: m.Size}
	}
	return out
}

// podFilesDir is the pod dir's tmpfs for its hostname, hosts and resolv.conf.
const podFilesDir = "files"

// Network attaches pods to the pod network (CNI). Setup runs after the
// pod's network namespace is pinned and returns the pod's IPs, primary
// first, and undoes what it did when it fails; Teardown must succeed when
// the namespace is already gone and when repeated. Host-network pods never
// reach it.
type Network interface {
	Setup(ctx context.Context, p *Sandbox, cfg *runtimeapi.PodSandboxConfig) (ips []string, err error)
	Teardown(ctx context.Context, p *Sandbox) error
}

// Config configures the service.
type Config struct {
	Store               *store.Store
	StateDir            string
	DefaultCgroupParent string
	Runtimes            Runtimes        // the runtime handlers: names, pause processes
	Host                spec.HostConfig // the node's; each handler adds its own (hostConfig)
	PauseBinary         string          // berth-pause, for pods sharing a PID namespace
	Pauser              Pauser          // starts pause processes without a runtime; nil: berth-pause on the host
	CgroupDriver        string          // cgroupfs or systemd, for the pause process's cgroup
	Network             Network         // nil: pods get loopback only
	Logger              *slog.Logger
	// UsernsDir holds the pause rootfs of pods in user namespaces (their
	// remapped root must reach it); others have theirs in the pod dir.
	UsernsDir usernsdir.Dir

	mounts mounts // nil: the host's (tests fake it)
}

// Runtimes is what the service needs of the runtime handlers
// (runtime.Registry): a handler by name ("" names the default one, an
// unknown name is InvalidArgument).
type Runtimes interface {
	Handler(name string) (runtime.Handler, error)
}

// Service owns all pods.
type Service struct {
	cfg     Config
	log     *slog.Logger
	pauser  Pauser
	names   *names.Registry
	records *table
	// quarantined are ids whose records could not be read at start: what
	// is on the host under them is left alone, not removed as an orphan.
	quarantined map[string]bool

	prep preparer // the pod network prepared ahead (prepared.go)

	mu   sync.RWMutex
	pods map[string]*Sandbox
	// opMu serialises state changes per pod (stop/remove vs. create).
	opMu sync.Map // id -> *sync.Mutex
}

// New loads pod records and reconciles them with the host.
func New(cfg Config) (*Service, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.mounts == nil {
		cfg.mounts = hostMounts{}
	}
	s := &Service{cfg: cfg, log: cfg.Logger, pauser: cfg.Pauser, names: names.New("pod"), pods: map[string]*Sandbox{}}
	if s.pauser == nil {
		s.pauser = newHostPauser(cfg.PauseBinary, cfg.Logger)
	}
	// Pod dirs hold the pod's files and namespaces: root-only, also when
	// an older berthd made the dir traversable.
	podsDir := filepath.Join(cfg.StateDir, "sandboxes")
	if err := os.MkdirAll(podsDir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(podsDir, 0o700); err != nil {
		return nil, err
	}
	if err := s.recover(); err != nil {
		return nil, err
	}
	s.prep.pause.Store(s.lastHadPause())
	s.refillPrepared()
	return s, nil
}

// Names exposes the reservation registry for the uncollected-result janitor.
func (s *Service) Names() *names.Registry { return s.names }

func (s *Service) lock(id string) func() {
	m, _ := s.opMu.LoadOrStore(id, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// Get returns the pod with the given id.
func (s *Service) Get(id string) (*Sandbox, error) {
	s.mu.RLock()
	p, ok := s.pods[id]
	s.mu.RUnlock()
	if !ok {
		return nil, errdefs.NotFound(fmt.Sprintf("pod sandbox %q not found", id))
	}
	return p, nil
}

// List returns all pods, newest first. It never touches disk.
func (s *Service) List() []*Sandbox {
	s.mu.RLock()
	out := make([]*Sandbox, 0, len(s.pods))
	for _, p := range s.pods {
		out = append(out, p)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt > out[j].CreatedAt })
	return out
}

// Quarantined says whether id's record was set aside as unreadable at start.
func (s *Service) Quarantined(id string) bool { return s.quarantined[id] }

// publishNew records a new pod, its metadata and first status, and makes
// it visible.
func (s *Service) publishNew(p *Sandbox) error {
	m, err := p.meta()
	if err != nil {
		return err
	}
	st, err := p.status()
	if err != nil {
		return err
	}
	if err := s.records.Create(p.ID, m, st); err != nil {
		return err
	}
	s.mu.Lock()
	s.pods[p.ID] = p
	s.mu.Unlock()
	return nil
}

// publish records a new state of a known pod (its status only: metadata
// never changes) and makes it visible.
func (s *Service) publish(p *Sandbox) error {
	st, err := p.status()
	if err != nil {
		return err
	}
	if err := s.records.PutStatus(p.ID, st); err != nil {
		return err
	}
	s.mu.Lock()
	s.pods[p.ID] = p
	s.mu.Unlock()
	return nil
}

// Key is the reservation key of a pod's metadata, as kubelet names pods.
func Key(md *runtimeapi.PodSandboxMetadata) string {
	return fmt.Sprintf("%s_%s_%s_%d", md.GetName(), md.GetNamespace(), md.GetUid(), md.GetAttempt())
}

// ReadyHook is called once a pod is set up (namespaces, pause process,
// network) and before it is recorded and visible to List and Get. An
// error undoes the pod and is returned as is.
type ReadyHook func(ctx context.Context, p *Sandbox) error

// RunOption changes how Run makes one pod.
type RunOption func(*runOptions)

type runOptions struct {
	ready ReadyHook
}

// WithReadyHook has hook run on the pod before it becomes visible.
func WithReadyHook(hook ReadyHook) RunOption {
	return func(o *runOptions) { o.ready = hook }
}

// Run creates and starts a pod sandbox and returns its id. A retry of a
// create whose result was never delivered gets that result (and runs no
// hook).
func (s *Service) Run(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, handler string, opts ...RunOption) (id string, err error) {
	var o runOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o := cfg.GetLinux().GetSecurityContext().GetSelinuxOptions(); spec.SELinuxRequested(o) {
		// ValidatePod refused them where SELinux is on.
		s.log.Info("pod selinux_options ignored: SELinux is not enabled on this node", "name", Key(cfg.GetMetadata()),
			"user", o.GetUser(), "role", o.GetRole(), "type", o.GetType(), "level", o.GetLevel())
	}
	h, err := s.cfg.Runtimes.Handler(handler)
	if err != nil {
		return "", err
	}
	handler = h.Name()
	// Checked with the handler's facts: user namespaces are per handler.
	host := s.hostConfig(h)
	pod, err := spec.ValidatePod(cfg, &host)
	if err != nil {
		return "", err
	}
	key := Key(cfg.GetMetadata())
	ticket, prior, err := s.names.Acquire(ctx, key)
	if err != nil {
		return "", err
	}
	if prior != "" {
		s.log.Info("handing undelivered pod to retry", "pod", prior, "name", key)
		return prior, nil
	}
	// The next network is prepared once the pod start calls are over
	// (PrepareAhead), not to compete with its create and start for the
	// CPU; or a second later when they never are.
	defer s.refillPreparedLater()
	pn := s.takePrepared(pod)
	if pn != nil {
		id = pn.id
	} else {
		id = names.NewID()
	}
	defer func() {
		ticket.Done(ctx, id, err, func(ctx context.Context, id string) {
			s.log.Warn("removing pod whose create result was never collected", "pod", id)
			if err := s.Stop(ctx, id); err == nil {
				s.Remove(ctx, id)
			}
		})
	}()
	start := time.Now()
	if err := s.create(ctx, id, key, pod, handler, o, pn); err != nil {
		id = ""
		return "", err
	}
	s.log.Debug("pod started", "pod", id, "name", key, "took", time.Since(start))
	return id, nil
}

// create makes pod id; pn, when not nil, is its namespaces and network,
// prepared ahead under id.
func (s *Service) create(ctx context.Context, id, key string, pod *spec.Pod, handler string, o runOptions, pn *preparedPod) (err error) {
	steps := metrics.StartSteps("RunPodSandbox")
	cfg := pod.Config
	p := &Sandbox{
		ID:             id,
		State:          Ready,
		CreatedAt:      time.Now().UnixNano(),
		RuntimeHandler: handler,
		CgroupParent:   cfg.GetLinux().GetCgroupParent(),
		Config:         proto.Clone(cfg).(*runtimeapi.PodSandboxConfig),
	}
	p.fillFromConfig()
	// A prepared network is this create's to undo until its dir is the
	// pod's (then teardown and the network's Teardown below undo it).
	taken := false
	if pn != nil {
		defer func() {
			if !taken {
				s.discardPrepared(pn)
			}
		}()
	}
	if p.CgroupParent == "" {
		p.CgroupParent = s.cfg.DefaultCgroupParent
	}
	// Refuse a parent the cgroup driver cannot use now, not at the first container.
	if _, err := cgroups.ContainerPath(s.cfg.CgroupDriver, p.CgroupParent, id); err != nil {
		return fmt.Errorf("linux.cgroup_parent with the %s cgroup driver: %w", s.cfg.CgroupDriver, err)
	}
	dir := p.Dir(s.cfg.StateDir)
	if pn != nil {
		// The dir with the pinned, attached namespace becomes the pod's.
		if err := s.cfg.mounts.rename(s.preparedPath(id), dir); err != nil {
			return fmt.Errorf("create pod dir: %w", err)
		}
		taken = true
	} else if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("create pod dir: %w", err)
	}
	defer func() {
		if err != nil {
			if cerr := s.teardown(p); cerr != nil {
				s.log.Error("cleaning up failed pod create", "pod", id, "err", cerr)
			}
		}
	}()
	if pn != nil {
		defer func() {
			if err != nil {
				if terr := s.cfg.Network.Teardown(context.WithoutCancel(ctx), p); terr != nil {
					s.log.Error("tearing down network of failed pod", "pod", id, "err", terr)
				}
			}
		}()
	}

	files, err := makePodFiles(cfg, p.HostNetwork)
	if err != nil {
		return err
	}
	if err := s.cfg.mounts.mountPodFiles(filepath.Join(dir, podFilesDir), len(files.hostname)+len(files.hosts)+len(files.resolv)); err != nil {
		return err
	}
	p.BoundedFiles = true
	hostnameFile, hostsFile, resolvFile, shm := p.Files(s.cfg.StateDir)
	for path, content := range map[string]string{hostnameFile: files.hostname, hostsFile: files.hosts, resolvFile: files.resolv} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return fmt.Errorf("write pod file: %w", err)
		}
	}
	if !p.HostIPC {
		if err := s.cfg.mounts.mountShm(shm); err != nil {
			return err
		}
	}
	steps.Done("files")
	var kinds []nsKind
	// A prepared pod has them all (never host-network).
	if !p.HostNetwork && pn == nil {
		// UTS follows the network: host-network pods keep the host's name.
		kinds = append(kinds, nsNet, nsUTS)
	}
	if !p.HostIPC && pn == nil {
		kinds = append(kinds, nsIPC)
	}
	var userns *userNS
	if u := pod.UserNS; u != nil {
		userns = &userNS{holder: s.cfg.PauseBinary, uids: idMaps(u.UIDs), gids: idMaps(u.GIDs)}
	}
	if p.Namespaces, err = s.cfg.mounts.pinNamespaces(dir, p.Hostname, kinds, userns); err != nil {
		return err
	}
	if pn != nil {
		if err := s.takeNamespaces(p, pn); err != nil {
			return err
		}
	}
	steps.Done("namespaces")
	direct := s.directPause(p)
	if couldTakePrepared(p) {
		// What the next pod is prepared with.
		s.prep.pause.Store(wantsPreparedPause(p, direct))
	}
	adopted := false
	if pn != nil && pn.pause != nil {
		if adopted, err = s.takePause(p, pn, direct); err != nil {
			return err
		}
	}
	var pauseStarted func() error
	if direct && !adopted {
		pauseStarted = s.startDirectPauseAsync(ctx, p)
		// Finished before the deferred teardown of a failed create.
		defer pauseStarted()
	}
	if pn != nil {
		if len(pn.ips) > 0 {
			p.IP, p.AdditionalIPs = pn.ips[0], pn.ips[1:]
		}
		steps.Done("network")
	} else if s.cfg.Network != nil && !p.HostNetwork {
		var ips []string
		// Assign, not declare: the deferred teardown below reads the
		// function's named err.
		ips, err = s.cfg.Network.Setup(ctx, p, cfg)
		if err != nil {
			return fmt.Errorf("set up pod network: %w", err)
		}
		defer func() {
			if err != nil {
				if terr := s.cfg.Network.Teardown(context.WithoutCancel(ctx), p); terr != nil {
					s.log.Error("tearing down network of failed pod", "pod", id, "err", terr)
				}
			}
		}()
		if len(ips) > 0 {
			p.IP, p.AdditionalIPs = ips[0], ips[1:]
		}
		steps.Done("network")
	}
	if adopted {
		steps.Done("pause")
	} else if direct {
		if err := pauseStarted(); err != nil {
			return err
		}
		steps.Done("pause")
	} else if s.needsPause(p) {
		// After the network: a gVisor sandbox takes the pod's interfaces
		// over when it is made, and sees none that CNI adds later.
		if err := s.startPause(ctx, p, pod); err != nil {
			return err
		}
		steps.Done("pause")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pod create abandoned: %w", err)
	}
	if dirLog := p.LogDirectory; dirLog != "" {
		if err := os.MkdirAll(dirLog, 0o755); err != nil {
			return fmt.Errorf("create log_directory %s: %w", dirLog, err)
		}
	}
	if o.ready != nil {
		if err := o.ready(ctx, p); err != nil {
			return err
		}
	}
	if err := s.publishNew(p); err != nil {
		return err
	}
	steps.Done("record")
	steps.Log(ctx, s.log, "pod create steps", slog.String("pod", id))
	return nil
}

// teardown releases everything a pod holds on the host. It is safe to repeat.
func (s *Service) teardown(p *Sandbox) error {
	dir := p.Dir(s.cfg.StateDir)
	var errs []error
	if s.hasPause(p) {
		errs = append(errs, s.stopPause(context.Background(), p))
	}
	errs = append(errs, s.cfg.mounts.unpinNamespaces(map[string]string{
		"net": filepath.Join(dir, "netns"), "ipc": filepath.Join(dir, "ipcns"), "uts": filepath.Join(dir, "utsns"),
		"pid": filepath.Join(dir, "pidns"), "user": filepath.Join(dir, "userns"),
	}))
	errs = append(errs, s.cfg.UsernsDir.Remove(p.ID))
	errs = append(errs, s.cfg.mounts.unmountShm(filepath.Join(dir, "shm")), s.cfg.mounts.unmountPodFiles(filepath.Join(dir, podFilesDir)))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove pod dir: %w", err)
	}
	return nil
}

// Stop releases the pod's network, pause process and namespaces; the
// caller (the pod layer) has stopped its containers. It is idempotent and
// succeeds for unknown pods, as CRI requires.
func (s *Service) Stop(ctx context.Context, id string) error {
	unlock := s.lock(id)
	defer unlock()
	p, err := s.Get(id)
	if err != nil {
		return nil
	}
	if p.State == NotReady {
		return nil
	}
	dir := p.Dir(s.cfg.StateDir)
	if s.cfg.Network != nil && !p.HostNetwork {
		if err := s.cfg.Network.Teardown(ctx, p); err != nil {
			return fmt.Errorf("tear down pod network: %w", err)
		}
	}
	if s.hasPause(p) {
		if err := s.stopPause(ctx, p); err != nil {
			return err
		}
	}
	if err := s.cfg.mounts.unpinNamespaces(p.Namespaces); err != nil {
		return err
	}
	if err := s.cfg.mounts.unmountShm(filepath.Join(dir, "shm")); err != nil {
		return err
	}
	// Containers of a stopped pod are stopped and no new ones are made:
	// a NOTREADY pod holds no mounts.
	if err := s.cfg.mounts.unmountPodFiles(filepath.Join(dir, podFilesDir)); err != nil {
		return err
	}
	np := *p
	np.State = NotReady
	np.Namespaces = nil
	if err := s.publish(&np); err != nil {
		return err
	}
	s.log.Info("pod stopped", "pod", id)
	return nil
}

// Remove removes a pod; the caller (the pod layer) has removed its
// containers. It is idempotent and succeeds for unknown pods. A ready pod
// is stopped first.
func (s *Service) Remove(ctx context.Context, id string) error {
	p, err := s.Get(id)
	if err != nil {
		return nil
	}
	if p.State == Ready {
		if err := s.Stop(ctx, id); err != nil {
			return err
		}
	}
	unlock := s.lock(id)
	defer unlock()
	if err := s.teardown(p); err != nil {
		return err
	}
	if err := s.records.Delete(id); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.pods, id)
	s.mu.Unlock()
	s.names.Release(p.Key, id)
	s.opMu.Delete(id)
	s.log.Info("pod removed", "pod", id)
	return nil
}

// UpdateResources records a ready pod's pod-level resources (CRI's
// UpdatePodSandboxResources: overhead, and the sum of its containers')
// and writes their total to the pod's own cgroup, which kubelet has
// normally resized already. A pod under the shared default cgroup parent
// has no cgroup of its own: only the record changes.
func (s *Service) UpdateResources(ctx context.Context, id string, overhead, res *runtimeapi.LinuxContainerResources) error {
	unlock := s.lock(id)
	defer unlock()
	p, err := s.Get(id)
	if err != nil {
		return err
	}
	if p.State != Ready {
		return errdefs.Precondition(fmt.Sprintf("pod sandbox %s is not ready (stopped); its resources cannot be updated", id))
	}
	if p.CgroupParent != s.cfg.DefaultCgroupParent {
		total, err := spec.Resources(podTotal(overhead, res), spec.ResourceOptions{SwapLimit: s.cfg.Host.SwapLimit, Hugetlb: s.cfg.Host.Hugetlb})
		if err != nil {
			return err
		}
		dir, err := cgroups.ParentPath(p.CgroupParent)
		if err != nil {
			return err
		}
		if err := cgroups.Update(dir, total); err != nil {
			return err
		}
	}
	np := *p
	np.Resources = &runtimeapi.UpdatePodSandboxResourcesRequest{Overhead: overhead, Resources: res}
	return s.publish(&np)
}

// podTotal is what the pod cgroup allows: its containers' sum plus the
// overhead. Zero limits stay zero (unlimited); CPU quotas add up as
// fractions of a CPU over the resources' period.
func podTotal(overhead, res *runtimeapi.LinuxContainerResources) *runtimeapi.LinuxContainerResources {
	t := &runtimeapi.LinuxContainerResources{}
	if res != nil {
		t = proto.Clone(res).(*runtimeapi.LinuxContainerResources)
	}
	if overhead == nil {
		return t
	}
	t.CpuShares += overhead.GetCpuShares()
	if t.MemoryLimitInBytes > 0 && overhead.GetMemoryLimitInBytes() > 0 {
		t.MemoryLimitInBytes += overhead.GetMemoryLimitInBytes()
	}
	if t.CpuQuota > 0 && overhead.GetCpuQuota() > 0 {
		period, oPeriod := t.CpuPeriod, overhead.GetCpuPeriod()
		if period == 0 {
			period = 100000
		}
		if oPeriod == 0 {
			oPeriod = 100000
		}
		t.CpuPeriod = period
		t.CpuQuota += overhead.GetCpuQuota() * period / oPeriod
	}
	return t
}

// recover loads records and reconciles them with the host: pods whose
// namespaces vanished (a reboot emptied the state dir) are not ready, and
// pod dirs without a record (a crash in the middle of a create) are removed.
func (s *Service) recover() error {
	start := time.Now()
	var err error
	if s.records, err = openTable(s.cfg.Store, s.cfg); err != nil {
		return err
	}
	rows, err := s.records.Load(func(id string, m *recordMeta, st *recordStatus) error {
		p, err := fromRecord(id, m, st)
		if err == nil {
			s.pods[id] = p
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("load pod records: %w", err)
	}
	if s.quarantined, err = s.records.QuarantinedIDs(); err != nil {
		return fmt.Errorf("load pod records: %w", err)
	}
	if n := len(s.quarantined); n > 0 {
		s.log.Warn("pod records in quarantine: their pods, if any, are left alone", "count", n)
	}
	for _, r := range rows {
		p := s.pods[r.ID]
		s.names.Restore(p.Key, p.ID)
		if p.State != Ready {
			continue
		}
		why := ""
		for _, path := range p.Namespaces {
			if !s.cfg.mounts.isMountPoint(path) {
				why = "pod namespaces are gone; marking pod not ready"
				break
			}
		}
		if why == "" && s.directPauseGone(p) {
			why = "pod's pause process (PID 1 of its shared PID namespace) is gone; marking pod not ready"
		}
		if why != "" {
			s.log.Warn(why, "pod", p.ID)
			s.finishStop(p)
			np := *p
			np.State = NotReady
			np.Namespaces = nil
			if err := s.publish(&np); err != nil {
				return err
			}
		}
	}
	// Before the half-created pods are torn down: a pause process holds
	// its cgroup busy.
	s.killOrphanPauses()
	s.recoverPrepared()
	defer func() { s.log.Info("pods recovered", "count", len(rows), "took", time.Since(start)) }()
	entries, err := os.ReadDir(filepath.Join(s.cfg.StateDir, "sandboxes"))
	if err != nil {
		return err
	}
	if s.cfg.Network != nil {
		ids := map[string]bool{}
		for id := range s.pods {
			ids[id] = true
		}
		for _, e := range entries {
			ids[e.Name()] = true
		}
		if n := killStalePlugins(ids); n > 0 {
			s.log.Warn("killed CNI plugins the previous berthd left running", "count", n)
		}
	}
	for _, e := range entries {
		if _, ok := s.pods[e.Name()]; ok || s.quarantined[e.Name()] {
			continue
		}
		s.log.Warn("removing half-created pod left by a crash", "pod", e.Name())
		half := &Sandbox{ID: e.Name()}
		if s.cfg.Network != nil {
			// Its CNI ADD may have run: release the veth and lease too.
			half.Namespaces = map[string]string{"net": filepath.Join(half.Dir(s.cfg.StateDir), "netns")}
			if err := s.cfg.Network.Teardown(context.Background(), half); err != nil {
				s.log.Error("tearing down the network of a half-created pod", "pod", e.Name(), "err", err)
			}
		}
		if err := s.teardown(half); err != nil {
			s.log.Error("cleaning up half-created pod", "pod", e.Name(), "err", err)
		}
	}
	return nil
}

// finishStop completes, at start, the stop of a pod whose namespaces are
// partly gone: a StopPodSandbox cut short by a crash unpins them one by one.
// Left alone, the rest would stay mounted (and its network attached) under
// a NOTREADY pod, which a retried stop no longer touches. Every step
// tolerates what is already undone.
func (s *Service) finishStop(p *Sandbox) {
	var errs []error
	if s.cfg.Network != nil && !p.HostNetwork {
		errs = append(errs, s.cfg.Network.Teardown(context.Background(), p))
	}
	if s.hasPause(p) {
		errs = append(errs, s.stopPause(context.Background(), p))
	}
	dir := p.Dir(s.cfg.StateDir)
	errs = append(errs, s.cfg.mounts.unpinNamespaces(p.Namespaces), s.cfg.mounts.unmountShm(filepath.Join(dir, "shm")), s.cfg.mounts.unmountPodFiles(filepath.Join(dir, podFilesDir)))
	if err := errors.Join(errs...); err != nil {
		s.log.Error("finishing the stop of a pod", "pod", p.ID, "err", err)
	}
}
