// Package nri is berth's adaptation of the Node Resource Interface
// (github.com/containerd/nri): node plugins (resource policies, device
// injectors, security agents) connect over a unix socket or are launched
// from a plugin directory, are synchronised with the pods and containers
// that exist, and then see every pod and container lifecycle event in
// order. Plugins may adjust a container's OCI spec before it is created
// and ask for resource updates of other containers.
//
// The package is shaped for the pod layer: it takes berth's view of a pod
// or container (Pod, Container), converts it to NRI's types, relays the
// event and hands back what plugins asked for. The pod layer implements
// Domain so plugins can be synchronised and their unsolicited updates
// applied. A disabled NRI is a no-op API.
package nri

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	nri "github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// API is what the pod layer calls around each lifecycle step. Every
// method of the disabled implementation returns at once with no effect.
type API interface {
	// Enabled reports whether plugins are consulted at all.
	Enabled() bool
	// Start launches pre-registered plugins and starts accepting external
	// ones; both are synchronised through d before they see events. Call
	// it before serving CRI: it holds the adaptation while pre-registered
	// plugins synchronise, which events must not run into.
	Start(d Domain) error
	// Stop disconnects every plugin and removes the socket listener.
	Stop()

	// RunPodSandbox is called once the sandbox is set up. On a plugin
	// error plugins are also told StopPodSandbox and RemovePodSandbox,
	// and the caller undoes its own steps.
	RunPodSandbox(ctx context.Context, pod *Pod) error
	// UpdatePodSandbox is called before pod-level resources change.
	UpdatePodSandbox(ctx context.Context, pod *Pod, overhead, resources *runtimeapi.LinuxContainerResources) error
	// PostUpdatePodSandbox is called after they changed.
	PostUpdatePodSandbox(ctx context.Context, pod *Pod) error
	// StopPodSandbox is called when the pod stops; repeated calls relay
	// the event once.
	StopPodSandbox(ctx context.Context, pod *Pod) error
	// RemovePodSandbox is called when the pod is removed.
	RemovePodSandbox(ctx context.Context, pod *Pod) error

	// CreateContainer asks plugins for adjustments to a container about to
	// be created and applies them to spec in place (spec is also what
	// plugins are shown, ctr.Spec is ignored). The adjustment is returned
	// for the record; Followup holds what plugins asked of other
	// containers. On a plugin error plugins are told StopContainer and
	// RemoveContainer, and the caller undoes its own steps.
	CreateContainer(ctx context.Context, pod *Pod, ctr *Container, spec *specs.Spec) (*api.ContainerAdjustment, Followup, error)
	// UndoCreateContainer tells plugins that a container CreateContainer
	// succeeded for was not created after all (a later step failed).
	UndoCreateContainer(ctx context.Context, pod *Pod, ctr *Container)
	// PostCreateContainer is called once the runtime created the container.
	PostCreateContainer(ctx context.Context, pod *Pod, ctr *Container) error
	// StartContainer is called right before the container starts.
	StartContainer(ctx context.Context, pod *Pod, ctr *Container) error
	// PostStartContainer is called once it runs.
	PostStartContainer(ctx context.Context, pod *Pod, ctr *Container) error
	// UpdateContainer is called before container resources change. It
	// returns the resources to apply (plugins may change them; nil: as
	// requested) and what plugins asked of other containers.
	UpdateContainer(ctx context.Context, pod *Pod, ctr *Container, res *runtimeapi.LinuxContainerResources) (*runtimeapi.LinuxContainerResources, Followup, error)
	// PostUpdateContainer is called after they changed.
	PostUpdateContainer(ctx context.Context, pod *Pod, ctr *Container) error
	// StopContainer is called when a container is stopped, and
	// ContainerExited when it exits by itself; either relays the event
	// once per container.
	StopContainer(ctx context.Context, pod *Pod, ctr *Container) (Followup, error)
	ContainerExited(ctx context.Context, pod *Pod, ctr *Container)
	// RemoveContainer is called when a container is removed; plugins see
	// StopContainer first if they have not yet.
	RemoveContainer(ctx context.Context, pod *Pod, ctr *Container) error

	// Apply carries out a Followup through the Domain. The caller runs it
	// after the event, holding no lock the Domain needs.
	Apply(ctx context.Context, f Followup) error

	// BlockPluginSync holds off the synchronisation of newly registering
	// plugins until the returned function is called. The pod layer holds
	// it from CreateContainer until the container is listed by the
	// Domain, so a plugin registering meanwhile does not miss it.
	BlockPluginSync() (unblock func())
}

// Domain is what the pod layer provides to NRI.
type Domain interface {
	Lister
	Updater
}

// Lister lists what plugins are synchronised with when they register.
// Events wait while a plugin is synchronised, so the lists must come from
// records that no CRI call holds locked across an NRI call.
type Lister interface {
	// ListPodSandboxes returns the pods that exist and are not removed.
	ListPodSandboxes(ctx context.Context) ([]*Pod, error)
	// ListContainers returns the containers that have not exited, each
	// with its OCI spec.
	ListContainers(ctx context.Context) ([]*Container, error)
}

// Updater applies what plugins ask for outside a CRI call: updates at
// synchronisation, unsolicited updates, and Followups.
type Updater interface {
	// UpdateContainerResources applies resources to a running or created
	// container as CRI's UpdateContainerResources does, without asking
	// NRI again.
	UpdateContainerResources(ctx context.Context, id string, res *runtimeapi.LinuxContainerResources) error
	// EvictContainer stops a container a plugin asked to evict.
	EvictContainer(ctx context.Context, id, reason string) error
}

// Followup is what plugins asked of other containers while handling an
// event.
type Followup struct {
	Updates   []*api.ContainerUpdate
	Evictions []*api.ContainerEviction
}

// Empty reports whether there is nothing to apply.
func (f Followup) Empty() bool { return len(f.Updates) == 0 && len(f.Evictions) == 0 }

// Options are the runtime-side settings that are not in Config.
type Options struct {
	RuntimeName    string // shown to plugins; default "berth"
	RuntimeVersion string
	Logger         *slog.Logger
	// InjectCDI resolves CDI devices plugins add; nil refuses them.
	InjectCDI CDIInjector
}

// New returns the disabled API when cfg.Enable is false; otherwise an
// adaptation that is ready to Start.
func New(cfg Config, o Options) (API, error) {
	if !cfg.Enable {
		return Disabled{}, nil
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.RuntimeName == "" {
		o.RuntimeName = "berth"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	setLogger(o.Logger)
	// The library keeps the timeouts process-wide.
	nri.SetPluginRegistrationTimeout(cfg.RegistrationTimeout)
	nri.SetPluginRequestTimeout(cfg.RequestTimeout)
	l := &local{cfg: cfg, opts: o, log: o.Logger.With("component", "nri"), state: map[string]state{}}
	var err error
	l.nri, err = nri.New(o.RuntimeName, o.RuntimeVersion, l.sync, l.unsolicited, cfg.options()...)
	if err != nil {
		return nil, fmt.Errorf("create NRI adaptation: %w", err)
	}
	return l, nil
}

// state is what plugins were last told about a pod or container, so that
// repeated CRI calls relay an event once and removal implies stop.
type state int

const (
	stateNone state = iota // unknown to plugins or removed
	stateCreated
	stateRunning
	stateStopped
)

type local struct {
	cfg  Config
	opts Options
	log  *slog.Logger
	nri  *nri.Adaptation

	domainMu sync.RWMutex
	domain   Domain

	// mu serialises events, as plugins expect to see them one at a time
	// and in order; it also guards state.
	mu    sync.Mutex
	state map[string]state
}

func (l *local) Enabled() bool { return true }

func (l *local) Start(d Domain) error {
	if d == nil {
		return errors.New("start NRI: nil domain")
	}
	l.domainMu.Lock()
	l.domain = d
	l.domainMu.Unlock()
	if err := l.nri.Start(); err != nil {
		return fmt.Errorf("start NRI: %w", err)
	}
	l.log.Info("NRI started", "socket", l.cfg.SocketPath, "plugin_path", l.cfg.PluginPath, "external", !l.cfg.DisableConnections)
	return nil
}

func (l *local) Stop() { l.nri.Stop() }

func (l *local) BlockPluginSync() func() { return l.nri.BlockPluginSync().Unblock }

func (l *local) getDomain() Domain {
	l.domainMu.RLock()
	defer l.domainMu.RUnlock()
	return l.domain
}

func (l *local) RunPodSandbox(ctx context.Context, pod *Pod) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := podToNRI(pod)
	err := l.nri.RunPodSandbox(ctx, &api.RunPodSandboxRequest{Pod: p})
	if err == nil {
		l.state[pod.ID] = stateRunning
		return nil
	}
	// Let plugins that already saw the pod forget it.
	l.relayPodGone(ctx, p)
	return pluginError("RunPodSandbox", err)
}

func (l *local) relayPodGone(ctx context.Context, p *api.PodSandbox) {
	if err := l.nri.StopPodSandbox(ctx, &api.StopPodSandboxRequest{Pod: p}); err != nil {
		l.log.Warn("NRI StopPodSandbox after a failed RunPodSandbox", "pod", p.Id, "err", err)
	}
	if err := l.nri.RemovePodSandbox(ctx, &api.RemovePodSandboxRequest{Pod: p}); err != nil {
		l.log.Warn("NRI RemovePodSandbox after a failed RunPodSandbox", "pod", p.Id, "err", err)
	}
	delete(l.state, p.Id)
}

func (l *local) UpdatePodSandbox(ctx context.Context, pod *Pod, overhead, resources *runtimeapi.LinuxContainerResources) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := l.nri.UpdatePodSandbox(ctx, &api.UpdatePodSandboxRequest{
		Pod:                    podToNRI(pod),
		OverheadLinuxResources: FromCRIResources(overhead),
		LinuxResources:         FromCRIResources(resources),
	})
	return pluginError("UpdatePodSandbox", err)
}

func (l *local) PostUpdatePodSandbox(ctx context.Context, pod *Pod) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return pluginError("PostUpdatePodSandbox", l.nri.PostUpdatePodSandbox(ctx, &api.PostUpdatePodSandboxRequest{Pod: podToNRI(pod)}))
}

func (l *local) StopPodSandbox(ctx context.Context, pod *Pod) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.state[pod.ID]; s != stateRunning && s != stateCreated {
		return nil
	}
	err := l.nri.StopPodSandbox(ctx, &api.StopPodSandboxRequest{Pod: podToNRI(pod)})
	l.state[pod.ID] = stateStopped
	return pluginError("StopPodSandbox", err)
}

func (l *local) RemovePodSandbox(ctx context.Context, pod *Pod) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state[pod.ID] == stateNone {
		return nil
	}
	p := podToNRI(pod)
	if s := l.state[pod.ID]; s == stateRunning || s == stateCreated {
		if err := l.nri.StopPodSandbox(ctx, &api.StopPodSandboxRequest{Pod: p}); err != nil {
			l.log.Warn("NRI StopPodSandbox before removal", "pod", pod.ID, "err", err)
		}
	}
	err := l.nri.RemovePodSandbox(ctx, &api.RemovePodSandboxRequest{Pod: p})
	delete(l.state, pod.ID)
	return pluginError("RemovePodSandbox", err)
}

func (l *local) CreateContainer(ctx context.Context, pod *Pod, ctr *Container, spec *specs.Spec) (*api.ContainerAdjustment, Followup, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := *ctr
	c.Spec = spec
	p, nc := podToNRI(pod), containerToNRI(&c)
	// Plugins may have seen the container before an error; from here on
	// they have to be told it went away if anything fails.
	l.state[ctr.ID] = stateCreated
	rsp, err := l.nri.CreateContainer(ctx, &api.CreateContainerRequest{Pod: p, Container: nc})
	if err == nil {
		err = Adjust(spec, rsp.GetAdjust(), l.opts.InjectCDI)
	}
	if err != nil {
		l.relayContainerGone(ctx, p, nc)
		return nil, Followup{}, pluginError("CreateContainer", err)
	}
	return rsp.GetAdjust(), Followup{Updates: rsp.GetUpdate(), Evictions: rsp.GetEvict()}, nil
}

func (l *local) UndoCreateContainer(ctx context.Context, pod *Pod, ctr *Container) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state[ctr.ID] == stateNone {
		return
	}
	l.relayContainerGone(ctx, podToNRI(pod), containerToNRI(ctr))
}

// relayContainerGone tells plugins a container they saw created is gone.
// The caller holds mu.
func (l *local) relayContainerGone(ctx context.Context, p *api.PodSandbox, c *api.Container) {
	if _, err := l.nri.StopContainer(ctx, &api.StopContainerRequest{Pod: p, Container: c}); err != nil {
		l.log.Warn("NRI StopContainer after a failed create", "container", c.Id, "err", err)
	}
	if err := l.nri.RemoveContainer(ctx, &api.RemoveContainerRequest{Pod: p, Container: c}); err != nil {
		l.log.Warn("NRI RemoveContainer after a failed create", "container", c.Id, "err", err)
	}
	delete(l.state, c.Id)
}

func (l *local) PostCreateContainer(ctx context.Context, pod *Pod, ctr *Container) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return pluginError("PostCreateContainer", l.nri.PostCreateContainer(ctx, &api.PostCreateContainerRequest{Pod: podToNRI(pod), Container: containerToNRI(ctr)}))
}

func (l *local) StartContainer(ctx context.Context, pod *Pod, ctr *Container) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.nri.StartContainer(ctx, &api.StartContainerRequest{Pod: podToNRI(pod), Container: containerToNRI(ctr)})
	l.state[ctr.ID] = stateRunning
	return pluginError("StartContainer", err)
}

func (l *local) PostStartContainer(ctx context.Context, pod *Pod, ctr *Container) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return pluginError("PostStartContainer", l.nri.PostStartContainer(ctx, &api.PostStartContainerRequest{Pod: podToNRI(pod), Container: containerToNRI(ctr)}))
}

func (l *local) UpdateContainer(ctx context.Context, pod *Pod, ctr *Container, res *runtimeapi.LinuxContainerResources) (*runtimeapi.LinuxContainerResources, Followup, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rsp, err := l.nri.UpdateContainer(ctx, &api.UpdateContainerRequest{
		Pod:            podToNRI(pod),
		Container:      containerToNRI(ctr),
		LinuxResources: FromCRIResources(res),
	})
	if err != nil {
		return nil, Followup{}, pluginError("UpdateContainer", err)
	}
	// The adaptation puts the target's own (possibly plugin-adjusted)
	// update last, nil if no plugin touched it.
	var f Followup
	upd := rsp.GetUpdate()
	var own *api.ContainerUpdate
	if n := len(upd); n > 0 {
		own, f.Updates = upd[n-1], upd[:n-1]
	}
	f.Evictions = rsp.GetEvict()
	adjusted := own.GetLinux().GetResources()
	if adjusted == nil {
		return nil, f, nil
	}
	out, err := ToCRIResources(adjusted)
	if err != nil {
		return nil, Followup{}, pluginError("UpdateContainer", err)
	}
	// CRI's OOM score lives with the resources but is not NRI's to change.
	out.OomScoreAdj = res.GetOomScoreAdj()
	return out, f, nil
}

func (l *local) PostUpdateContainer(ctx context.Context, pod *Pod, ctr *Container) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return pluginError("PostUpdateContainer", l.nri.PostUpdateContainer(ctx, &api.PostUpdateContainerRequest{Pod: podToNRI(pod), Container: containerToNRI(ctr)}))
}

func (l *local) StopContainer(ctx context.Context, pod *Pod, ctr *Container) (Followup, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stopContainer(ctx, pod, ctr)
}

// stopContainer relays StopContainer once per container. The caller
// holds mu.
func (l *local) stopContainer(ctx context.Context, pod *Pod, ctr *Container) (Followup, error) {
	if s := l.state[ctr.ID]; s != stateCreated && s != stateRunning {
		return Followup{}, nil
	}
	rsp, err := l.nri.StopContainer(ctx, &api.StopContainerRequest{Pod: podToNRI(pod), Container: containerToNRI(ctr)})
	l.state[ctr.ID] = stateStopped
	if err != nil {
		return Followup{}, pluginError("StopContainer", err)
	}
	return Followup{Updates: rsp.GetUpdate()}, nil
}

func (l *local) ContainerExited(ctx context.Context, pod *Pod, ctr *Container) {
	// Exits are noticed by monitors that must not wait on plugins.
	go func() {
		ctx := context.WithoutCancel(ctx)
		l.mu.Lock()
		f, err := l.stopContainer(ctx, pod, ctr)
		l.mu.Unlock()
		if err != nil {
			l.log.Warn("NRI StopContainer for an exited container", "container", ctr.ID, "err", err)
		}
		if err := l.Apply(ctx, f); err != nil {
			l.log.Warn("NRI updates after a container exit", "container", ctr.ID, "err", err)
		}
	}()
}

func (l *local) RemoveContainer(ctx context.Context, pod *Pod, ctr *Container) error {
	l.mu.Lock()
	s := l.state[ctr.ID]
	if s == stateNone {
		l.mu.Unlock()
		return nil
	}
	f, err := l.stopContainer(ctx, pod, ctr)
	if err != nil {
		l.log.Warn("NRI StopContainer before removal", "container", ctr.ID, "err", err)
	}
	err = l.nri.RemoveContainer(ctx, &api.RemoveContainerRequest{Pod: podToNRI(pod), Container: containerToNRI(ctr)})
	delete(l.state, ctr.ID)
	l.mu.Unlock()
	if aerr := l.Apply(ctx, f); aerr != nil {
		l.log.Warn("NRI updates after a container stop", "container", ctr.ID, "err", aerr)
	}
	return pluginError("RemoveContainer", err)
}

func (l *local) Apply(ctx context.Context, f Followup) error {
	if f.Empty() {
		return nil
	}
	d := l.getDomain()
	if d == nil {
		return errors.New("NRI: no domain to apply updates through")
	}
	var errs []error
	for _, e := range f.Evictions {
		if err := d.EvictContainer(ctx, e.GetContainerId(), e.GetReason()); err != nil {
			errs = append(errs, fmt.Errorf("evict %s: %w", e.GetContainerId(), err))
		}
	}
	if _, err := applyUpdates(ctx, d, f.Updates, l.log); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// applyUpdates applies container updates through d and returns the ones
// that failed and may not be ignored.
func applyUpdates(ctx context.Context, d Updater, updates []*api.ContainerUpdate, log *slog.Logger) ([]*api.ContainerUpdate, error) {
	var failed []*api.ContainerUpdate
	var errs []error
	for _, u := range updates {
		res, err := ToCRIResources(u.GetLinux().GetResources())
		if err == nil && res != nil {
			err = d.UpdateContainerResources(ctx, u.GetContainerId(), res)
		}
		if err == nil {
			continue
		}
		if u.GetIgnoreFailure() {
			log.Info("NRI container update failed, ignored as the plugin allows", "container", u.GetContainerId(), "err", err)
			continue
		}
		failed = append(failed, u)
		errs = append(errs, fmt.Errorf("update %s: %w", u.GetContainerId(), err))
	}
	return failed, errors.Join(errs...)
}

// sync hands plugins the pods and containers that exist and applies the
// updates they answer with.
func (l *local) sync(ctx context.Context, cb nri.SyncCB) error {
	d := l.getDomain()
	if d == nil {
		return errors.New("NRI: no domain to synchronise plugins with")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	pods, err := d.ListPodSandboxes(ctx)
	if err != nil {
		return fmt.Errorf("list pods for NRI: %w", err)
	}
	ctrs, err := d.ListContainers(ctx)
	if err != nil {
		return fmt.Errorf("list containers for NRI: %w", err)
	}
	for _, p := range pods {
		if l.state[p.ID] == stateNone {
			l.state[p.ID] = stateRunning
		}
	}
	for _, c := range ctrs {
		switch c.State {
		case runtimeapi.ContainerState_CONTAINER_CREATED:
			l.state[c.ID] = stateCreated
		case runtimeapi.ContainerState_CONTAINER_RUNNING:
			l.state[c.ID] = stateRunning
		}
	}
	updates, err := cb(ctx, podsToNRI(pods), containersToNRI(ctrs))
	if err != nil {
		return err
	}
	if _, err := applyUpdates(ctx, d, updates, l.log); err != nil {
		l.log.Warn("NRI updates at plugin synchronisation", "err", err)
	}
	return nil
}

// unsolicited applies updates a plugin asks for on its own.
func (l *local) unsolicited(ctx context.Context, updates []*api.ContainerUpdate) ([]*api.ContainerUpdate, error) {
	d := l.getDomain()
	if d == nil {
		return updates, errors.New("NRI: no domain to apply updates through")
	}
	return applyUpdates(ctx, d, updates, l.log)
}

// ErrPlugin marks errors that come from NRI plugins, so the CRI layer can
// tell them from berth's own failures.
var ErrPlugin = errors.New("NRI plugin")

func pluginError(event string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %s: %w", ErrPlugin, event, err)
}
