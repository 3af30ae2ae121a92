package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/sandbox"
)

// Config configures the pod network.
type Config struct {
	// ConfDir holds CNI network configs; the first by file name is used.
	// It is watched, so a network installed later (by a CNI DaemonSet) is
	// used for the next pod without a restart.
	ConfDir string
	// BinDirs are searched for plugin binaries.
	BinDirs []string
	// CacheDir keeps libcni's ADD results, which DEL needs; it must survive
	// berthd restarts (the state dir does).
	CacheDir string
	// Builtin is used while ConfDir holds no config; nil: none, and pods
	// wait (Status fails) until a config is installed.
	Builtin *Builtin
	Logger  *slog.Logger
}

// teardownTimeout bounds a DEL whose caller set no deadline (cleanup after
// a failed create runs on a context without one).
const teardownTimeout = time.Minute

// Manager attaches pods to the CNI network. It implements sandbox.Network.
type Manager struct {
	cfg Config
	log *slog.Logger
	cni *libcni.CNIConfig

	// inproc runs the built-in network in-process (nil: off); recDir
	// holds its per-pod records, read at teardown whatever the setting.
	inproc *bridgeNet
	recDir string

	cur      atomic.Pointer[netConf]
	reloadMu sync.Mutex
	masqMu   sync.Mutex
	masqDone atomic.Bool // the built-in network's node-level masquerade is in place
	watcher  *fsnotify.Watcher
	done     chan struct{}
}

var _ sandbox.PreparableNetwork = (*Manager)(nil)

// New loads the network and starts watching the conf dir. A missing or
// broken network is not an error here: Status reports it, and pods fail
// to start with the reason until it is fixed.
func New(cfg Config) (*Manager, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if len(cfg.BinDirs) == 0 {
		return nil, errors.New("network: no CNI plugin directories configured")
	}
	if err := os.MkdirAll(cfg.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("network: create CNI cache dir: %w", err)
	}
	if cfg.Builtin != nil && cfg.Builtin.DataDir != "" {
		if err := os.MkdirAll(cfg.Builtin.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("network: create IP lease dir: %w", err)
		}
		if freed, err := sweepEmptyLeases(cfg.Builtin.Name, cfg.Builtin.DataDir); err != nil {
			cfg.Logger.Warn("checking the built-in network's IP leases", "err", err)
		} else if len(freed) > 0 {
			cfg.Logger.Warn("freed IP leases a crash left without a pod id", "ips", freed)
		}
	}
	m := &Manager{
		cfg:    cfg,
		log:    cfg.Logger,
		cni:    libcni.NewCNIConfigWithCacheDir(cfg.BinDirs, cfg.CacheDir, nil),
		recDir: filepath.Join(cfg.CacheDir, inprocessDir),
		done:   make(chan struct{}),
	}
	if cfg.Builtin != nil && cfg.Builtin.InProcess {
		// A bad subnet is reported by selectConf (Status), as for the plugins.
		if bn, err := newBridgeNet(*cfg.Builtin, cfg.CacheDir); err == nil {
			m.inproc = bn
		}
	}
	// The conf dir must exist to be watched; a fresh node has none yet.
	if err := os.MkdirAll(cfg.ConfDir, 0o755); err != nil {
		m.log.Warn("cannot create the CNI config dir; networks installed later need a restart", "dir", cfg.ConfDir, "err", err)
	} else if m.watcher, err = fsnotify.NewWatcher(); err != nil {
		m.log.Warn("cannot watch the CNI config dir; networks installed later need a restart", "err", err)
	} else if err := m.watcher.Add(cfg.ConfDir); err != nil {
		m.watcher.Close()
		m.watcher = nil
		m.log.Warn("cannot watch the CNI config dir; networks installed later need a restart", "dir", cfg.ConfDir, "err", err)
	}
	m.reload()
	if m.watcher != nil {
		go m.watch()
	} else {
		close(m.done)
	}
	return m, nil
}

// Close stops watching the conf dir.
func (m *Manager) Close() error {
	if m.watcher == nil {
		return nil
	}
	err := m.watcher.Close()
	<-m.done
	return err
}

func (m *Manager) watch() {
	defer close(m.done)
	for {
		select {
		case ev, ok := <-m.watcher.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Chmod) && !ev.Has(fsnotify.Write) {
				continue
			}
			m.reload()
		case err, ok := <-m.watcher.Errors:
			if !ok {
				return
			}
			// An overflow loses events: re-read everything.
			m.log.Warn("watching the CNI config dir", "err", err)
			m.reload()
		}
	}
}

// reload re-reads the conf dir and logs when the network changes.
func (m *Manager) reload() {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	n := selectConf(m.cfg.ConfDir, m.cfg.BinDirs, m.cfg.Builtin)
	old := m.cur.Swap(n)
	switch {
	case n.err != nil && (old == nil || old.err == nil || old.err.Error() != n.err.Error()):
		m.log.Warn("pod network not ready", "err", n.err)
	case n.err == nil && (old == nil || old.err != nil || old.source != n.source || string(old.list.Bytes) != string(n.list.Bytes)):
		m.log.Info("pod network", "network", n.list.Name, "source", n.source, "plugins", pluginTypes(n.list))
	}
	if n.err == nil && n.source == builtinSource {
		if err := m.nodeMasquerade(); err != nil {
			m.log.Warn("pod network not ready", "err", err)
		}
	}
}

// nodeMasquerade puts the built-in network's masquerade in place (once per
// process: iptables is checked, and fixed, at each berthd start), or with
// IPMasq off removes one a previous configuration left. An error leaves
// the network not ready; Status and Setup try again.
func (m *Manager) nodeMasquerade() error {
	b := m.cfg.Builtin
	if b == nil || m.masqDone.Load() {
		return nil
	}
	m.masqMu.Lock()
	defer m.masqMu.Unlock()
	if m.masqDone.Load() {
		return nil
	}
	subnet, err := netip.ParsePrefix(b.Subnet)
	if err != nil {
		return err // selectConf has reported it already
	}
	if b.IPMasq {
		start := time.Now()
		if err := EnsureMasquerade(subnet); err != nil {
			return fmt.Errorf("built-in network: %w (is iptables installed?)", err)
		}
		m.log.Info("pod masquerade in place", "subnet", subnet.Masked(), "chain", MasqChain, "took", time.Since(start))
	} else if err := RemoveMasquerade(subnet); errors.Is(err, exec.ErrNotFound) {
		// No iptables: nothing to remove.
		m.log.Debug("removing the built-in network's masquerade", "subnet", subnet.Masked(), "err", err)
	} else if err != nil {
		m.log.Warn("removing the built-in network's masquerade (default_ip_masq is off)", "subnet", subnet.Masked(), "err", err)
	}
	m.masqDone.Store(true)
	return nil
}

func pluginTypes(l *libcni.NetworkConfigList) []string {
	out := make([]string, len(l.Plugins))
	for i, p := range l.Plugins {
		out[i] = p.Network.Type
	}
	return out
}

// Status says why pods cannot get a network, or nil when they can.
func (m *Manager) Status() error {
	n := m.cur.Load()
	if n.err == nil && n.source == builtinSource {
		return m.nodeMasquerade()
	}
	return n.err
}

// Network names the network new pods join and where it came from.
func (m *Manager) Network() string {
	n := m.cur.Load()
	if n.err != nil {
		return ""
	}
	return fmt.Sprintf("%s (%s)", n.list.Name, n.source)
}

// Setup runs ADD for the pod network in the pod's network namespace and
// returns the pod's IPs, IPv4 first. "lo" is already up: the namespace
// was made with it (see loopbackNetwork). Plugins run on ctx: a hanging
// one is killed at the request's deadline. On failure whatever the plugins
// made is deleted again.
func (m *Manager) Setup(ctx context.Context, p *sandbox.Sandbox, cfg *runtimeapi.PodSandboxConfig) (ips []string, err error) {
	n := m.cur.Load()
	if n.err != nil {
		return nil, errdefs.Precondition("pod network is not ready: " + n.err.Error())
	}
	if n.source == builtinSource {
		if err := m.nodeMasquerade(); err != nil {
			return nil, errdefs.Precondition("pod network is not ready: " + err.Error())
		}
	}
	netns := p.Namespaces["net"]
	if netns == "" {
		return nil, fmt.Errorf("pod %s has no network namespace", p.ID)
	}
	rt, err := runtimeConf(p, cfg, netns)
	if err != nil {
		return nil, err
	}
	_, hostPorts := rt.CapabilityArgs["portMappings"]
	if n.source == builtinSource && m.inproc != nil && !hostPorts {
		return m.setupInProcess(ctx, p, netns)
	}
	list := n.list
	if !hostPorts && n.noPorts != nil {
		list = n.noPorts
	}
	start := time.Now()
	res, err := m.cni.AddNetworkList(ctx, list, rt)
	if err == nil {
		ips, err = podIPs(res)
	}
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			err = fmt.Errorf("%w (%w)", err, cerr)
		}
		// The plugins of a failed ADD may have left a veth or a lease:
		// DEL is how CNI undoes them, even when ctx has expired.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
		defer cancel()
		if derr := m.cni.DelNetworkList(dctx, list, rt); derr != nil {
			m.log.Error("undoing a failed CNI ADD", "pod", p.ID, "network", list.Name, "err", derr)
		}
		return nil, fmt.Errorf("CNI network %q from %s: %w", list.Name, n.source, err)
	}
	m.log.Debug("pod network set up", "pod", p.ID, "network", list.Name, "plugins", pluginTypes(list), "ips", ips, "took", time.Since(start))
	return ips, nil
}

// Preparable says whether a pod with cfg (nil: any pod) gets the network
// set-up every pod gets, so that it can take a network prepared ahead
// (sandbox.PreparableNetwork): the built-in network in-process, whose
// ADD depends on nothing but the pod's id and namespace, for a pod
// without host ports (those run the plugins, portmap included). A pod
// whose config Setup would refuse (a bad bandwidth annotation) is not
// preparable either, so that it still gets Setup's error.
func (m *Manager) Preparable(cfg *runtimeapi.PodSandboxConfig) bool {
	n := m.cur.Load()
	if n.err != nil || n.source != builtinSource || m.inproc == nil || !m.cfg.Builtin.PrepareAhead {
		return false
	}
	rt, err := runtimeConf(&sandbox.Sandbox{}, cfg, "")
	if err != nil {
		return false
	}
	_, hostPorts := rt.CapabilityArgs["portMappings"]
	return !hostPorts
}

// Prepare attaches the namespace netns to the built-in network in-process
// under pod id, as Setup does for a preparable pod (Preparable), and
// fails for any other network: one installed in the conf dir since
// Preparable said yes never runs for a pod nobody asked for.
func (m *Manager) Prepare(ctx context.Context, id, netns string) ([]string, error) {
	if !m.Preparable(nil) {
		return nil, errors.New("the pod network is not the built-in one in-process: nothing is prepared")
	}
	if err := m.nodeMasquerade(); err != nil {
		return nil, errdefs.Precondition("pod network is not ready: " + err.Error())
	}
	return m.setupInProcess(ctx, &sandbox.Sandbox{ID: id}, netns)
}

// Unprepare releases what a Prepare of id made, going by its in-process
// record: nothing when there is none (no plugin runs for an id that never
// had an ADD).
func (m *Manager) Unprepare(id, netns string) error {
	if !isNetns(netns) {
		netns = ""
	}
	return m.teardownInProcess(id, netns)
}

// setupInProcess attaches the pod to the built-in network without the
// plugins (see inprocess.go).
func (m *Manager) setupInProcess(ctx context.Context, p *sandbox.Sandbox, netns string) ([]string, error) {
	start := time.Now()
	res, err := m.inproc.add(ctx, m.log, p.ID, netns)
	var ips []string
	if err == nil {
		if ips, err = podIPs(res); err != nil {
			// Not expected: add made them. Undo as for any failure.
			if derr := m.teardownInProcess(p.ID, netns); derr != nil {
				m.log.Error("undoing a failed in-process network ADD", "pod", p.ID, "err", derr)
			}
		}
	}
	if err != nil {
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%w (%w)", err, cerr)
		}
		return nil, fmt.Errorf("built-in network %q (in-process): %w", m.cfg.Builtin.Name, err)
	}
	m.log.Debug("pod network set up", "pod", p.ID, "network", m.cfg.Builtin.Name, "inprocess", true, "ips", ips, "took", time.Since(start))
	return ips, nil
}

// teardownInProcess undoes an in-process ADD of pod id, if it made one.
func (m *Manager) teardownInProcess(id, netns string) error {
	rec, err := readRecord(m.recDir, id)
	if err != nil || rec == nil {
		return err
	}
	return delInProcess(m.recDir, rec, netns)
}

// podIPs returns the addresses the result gives the pod's eth0, IPv4
// first (kubelet takes the first as the pod IP).
func podIPs(res types.Result) ([]string, error) {
	r, err := current.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("read ADD result: %w", err)
	}
	var v4, v6 []string
	for _, ip := range r.IPs {
		if ip.Interface != nil {
			i := *ip.Interface
			if i < 0 || i >= len(r.Interfaces) || r.Interfaces[i].Sandbox == "" || r.Interfaces[i].Name != podIfName {
				continue
			}
		}
		if ip.Address.IP.To4() != nil {
			v4 = append(v4, ip.Address.IP.String())
		} else if ip.Address.IP.To16() != nil && !ip.Address.IP.IsLinkLocalUnicast() {
			v6 = append(v6, ip.Address.IP.String())
		}
	}
	if len(v4)+len(v6) == 0 {
		return nil, errors.New("the plugins gave the pod no IP address")
	}
	return append(v4, v6...), nil
}

// Teardown runs DEL for every network the pod was attached to, with the
// config and arguments cached at ADD time (so it works after a config
// change or a berthd restart). It succeeds when the network namespace is
// gone and when repeated: plugins' DEL is idempotent, and a pod with no
// cached attachment gets a best-effort DEL against the current network.
func (m *Manager) Teardown(ctx context.Context, p *sandbox.Sandbox) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, teardownTimeout)
		defer cancel()
	}
	netns := p.Namespaces["net"]
	if !isNetns(netns) {
		// Plugins skip the work inside a namespace they are not given; a
		// dead namespace took its interfaces with it.
		netns = ""
	}
	start := time.Now()
	// An in-process ADD (inprocess.go) left a record: undo it the same way,
	// also when the setting has changed since.
	rec, err := readRecord(m.recDir, p.ID)
	if err != nil {
		return fmt.Errorf("tear down network of pod %s: %w", p.ID, err)
	}
	if rec != nil {
		if err := delInProcess(m.recDir, rec, netns); err != nil {
			return fmt.Errorf("tear down network of pod %s: built-in network %q (in-process): %w", p.ID, rec.Network, err)
		}
	}
	atts, err := m.cni.GetCachedAttachments(p.ID)
	if err != nil {
		return fmt.Errorf("read CNI cache of pod %s: %w", p.ID, err)
	}
	if len(atts) == 0 && rec != nil {
		m.log.Debug("pod network torn down", "pod", p.ID, "inprocess", true, "took", time.Since(start))
		return nil
	}
	if len(atts) == 0 {
		m.delUncached(ctx, p, netns)
		m.dropCache(p.ID)
		return nil
	}
	if !slices.ContainsFunc(atts, func(a *libcni.NetworkAttachment) bool { return a.IfName == podIfName }) {
		// Only an older berthd's loopback ADD finished (it died during
		// the pod network's ADD): that ADD may still have taken a lease
		// and made a veth, so DEL it too.
		m.delUncached(ctx, p, netns)
	}
	var errs []error
	for _, a := range atts {
		if a.Network == loopbackNetwork && a.IfName == "lo" {
			continue // see loopbackNetwork: nothing to undo
		}
		list, err := libcni.NetworkConfFromBytes(a.Config)
		if err != nil {
			errs = append(errs, fmt.Errorf("cached CNI config of network %q: %w", a.Network, err))
			continue
		}
		rt := &libcni.RuntimeConf{ContainerID: p.ID, NetNS: netns, IfName: a.IfName, Args: a.CniArgs, CapabilityArgs: a.CapabilityArgs}
		if err := m.cni.DelNetworkList(ctx, list, rt); err != nil {
			if cerr := ctx.Err(); cerr != nil {
				// The plugin was killed at the deadline: say so, not
				// just "signal: killed".
				err = fmt.Errorf("%w (%w)", err, cerr)
			}
			errs = append(errs, fmt.Errorf("CNI network %q: %w", a.Network, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tear down network of pod %s: %w", p.ID, err)
	}
	m.dropCache(p.ID)
	m.log.Debug("pod network torn down", "pod", p.ID, "took", time.Since(start))
	return nil
}

// dropCache removes the cached ADD results of pod id that DEL left: libcni
// writes them in place, so berthd killed during an ADD can leave a
// truncated one, which libcni then neither reads nor deletes.
func (m *Manager) dropCache(id string) {
	left, _ := filepath.Glob(filepath.Join(m.cfg.CacheDir, "results", "*-"+id+"-*"))
	// Likewise a berthd killed while writing an in-process record (before
	// the ADD's first step, so nothing else of it is there) leaves its
	// temp file.
	left = append(left, recordPath(m.recDir, id)+".tmp")
	for _, f := range left {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			m.log.Warn("removing a pod's cached CNI result", "pod", id, "file", f, "err", err)
		}
	}
}

// delUncached handles a pod whose ADD result is not cached: an ADD cut
// short by a crash may still have left a lease. Errors are only logged, so
// that a pod never gets stuck on a network that has since changed.
func (m *Manager) delUncached(ctx context.Context, p *sandbox.Sandbox, netns string) {
	n := m.cur.Load()
	if n.err != nil {
		return
	}
	rt := &libcni.RuntimeConf{ContainerID: p.ID, NetNS: netns, IfName: podIfName, Args: [][2]string{
		{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", p.Namespace}, {"K8S_POD_NAME", p.Name},
		{"K8S_POD_INFRA_CONTAINER_ID", p.ID}, {"K8S_POD_UID", p.UID},
	}}
	if err := m.cni.DelNetworkList(ctx, n.list, rt); err != nil {
		m.log.Warn("best-effort CNI DEL of a pod without a cached ADD result", "pod", p.ID, "network", n.list.Name, "err", err)
	}
}

// isNetns reports whether path is a live network namespace (a bind mount
// of an nsfs file), not the empty file left once it is unmounted.
func isNetns(path string) bool {
	if path == "" {
		return false
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}
