package network

// The built-in network in-process.
//
// Why: the built-in network is the CNI bridge plugin with host-local IPAM.
// Run through libcni, each pod's ADD is two plugin execs (bridge, which
// execs host-local) and so is its DEL. On the development VMs a Go plugin
// binary's start-up alone costs ~30 ms, so an ADD took ~41 ms inside
// berthd of which the bridge's own netlink and sysctl work was ~5 ms
// (docs/networking.md, "Where a built-in network ADD goes"). berthd
// therefore does that same work itself, with the reference plugins' own
// libraries (containernetworking/plugins' pkg/ip, pkg/ns, pkg/ipam and
// host-local's allocator and disk store; vishvananda/netlink): same
// bridge, veth pair, hairpin mode, gateway address, routes and ADD result
// as the plugins give for the same config, and the IP from the same lease
// store (same files, same lock), so pods of either path never collide and
// leases survive restarts.
//
// Only the built-in network runs here, and only for pods without a
// hostPort (those run the whole list, portmap included, through libcni on
// the same bridge and lease store). Networks from the conf dir always go
// through libcni, unchanged. network.builtin_inprocess = false runs the
// plugins for every pod.
//
// Which path set a pod up is recorded per pod: an in-process ADD writes
// <cache dir>/inprocess/<pod ID>.json before its first step (so a berthd
// killed midway leaves the record for the next DEL or the start-up
// clean-up to find), and libcni's ADD leaves its result cache. Teardown
// takes the path of the record it finds, whatever the current settings.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ip"
	"github.com/containernetworking/plugins/pkg/ipam"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend/allocator"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend/disk"
	"github.com/vishvananda/netlink"
)

// inprocessDir holds the records of in-process ADDs, under the CNI cache dir.
const inprocessDir = "inprocess"

// inprocRecordKind versions the record format.
const inprocRecordKind = "berthInProcessV1"

// inprocRecord says that the built-in network was set up in-process for
// a pod, with what DEL needs: where the lease store is and which
// interface to delete. It is written before the ADD's first step.
type inprocRecord struct {
	Kind        string `json:"kind"`
	ContainerID string `json:"containerId"`
	Network     string `json:"networkName"` // host-local's store: <DataDir>/<Network>
	DataDir     string `json:"dataDir"`
	Bridge      string `json:"bridge"`
	IfName      string `json:"ifName"`
	// Result is the ADD's CNI result (the plugins' shape), once complete.
	Result json.RawMessage `json:"result,omitempty"`
}

// bridgeNet runs the built-in network in-process.
type bridgeNet struct {
	bridge string
	ipam   *allocator.IPAMConfig
	recDir string
}

// newBridgeNet parses b's IPAM section with host-local's own loader, as
// the plugin would on every ADD.
func newBridgeNet(b Builtin, cacheDir string) (*bridgeNet, error) {
	section, err := b.ipam()
	if err != nil {
		return nil, err
	}
	conf, err := json.Marshal(map[string]any{"cniVersion": cniVersion, "name": b.Name, "ipam": section})
	if err != nil {
		return nil, err
	}
	ipamConf, _, err := allocator.LoadIPAMConfig(conf, "")
	if err != nil {
		return nil, fmt.Errorf("built-in network: %w", err)
	}
	recDir := filepath.Join(cacheDir, inprocessDir)
	if err := os.MkdirAll(recDir, 0o700); err != nil {
		return nil, fmt.Errorf("built-in network: %w", err)
	}
	return &bridgeNet{bridge: b.Bridge, ipam: ipamConf, recDir: recDir}, nil
}

// sweepEmptyLeases removes the empty lease files of host-local's store
// <dataDir>/<name>, at start-up, before any ADD of this berthd: host-local
// makes a lease file (O_EXCL) and then writes the pod's id into it, so a
// crash between the two (berthd's, for an in-process ADD; a plugin killed
// with it) leaves a lease no DEL can match by id, and the address is lost
// until someone deletes the file. It returns the addresses freed.
func sweepEmptyLeases(name, dataDir string) ([]string, error) {
	store, err := disk.New(name, dataDir)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	if err := store.Lock(); err != nil {
		return nil, err
	}
	defer store.Unlock()
	dir := filepath.Join(dataDir, name)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var freed []string
	for _, e := range entries {
		n := e.Name()
		if n == "lock" || strings.HasPrefix(n, "last_reserved_ip") || !e.Type().IsRegular() {
			continue
		}
		if fi, err := e.Info(); err != nil || fi.Size() != 0 {
			continue
		}
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return freed, err
		}
		freed = append(freed, n)
	}
	return freed, nil
}

func recordPath(recDir, id string) string { return filepath.Join(recDir, id+".json") }

// writeRecord writes r atomically (temp file and rename): a crash leaves
// the old record or the new one, never half of one.
func writeRecord(recDir string, r *inprocRecord) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	path := recordPath(recDir, r.ContainerID)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// readRecord returns the in-process record of pod id, or nil when there
// is none (the pod was not set up in-process).
func readRecord(recDir, id string) (*inprocRecord, error) {
	data, err := os.ReadFile(recordPath(recDir, id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r inprocRecord
	if err := json.Unmarshal(data, &r); err != nil || r.Kind != inprocRecordKind || r.ContainerID != id || r.Network == "" || r.IfName == "" {
		return nil, fmt.Errorf("in-process network record %s is unreadable (%v): remove it once the pod's veth and IP lease are released", recordPath(recDir, id), err)
	}
	return &r, nil
}

// add attaches the pod in netnsPath to the built-in network: what the
// bridge plugin's ADD does for the built-in config (isGateway, hairpin
// mode, no ipMasq, default MTU), with host-local's allocation in-process.
// On failure every step is undone (del).
func (bn *bridgeNet) add(ctx context.Context, log *slog.Logger, id, netnsPath string) (_ *current.Result, err error) {
	rec := &inprocRecord{Kind: inprocRecordKind, ContainerID: id, Network: bn.ipam.Name, DataDir: bn.ipam.DataDir, Bridge: bn.bridge, IfName: podIfName}
	if err := writeRecord(bn.recDir, rec); err != nil {
		return nil, fmt.Errorf("record in-process network of pod %s: %w", id, err)
	}
	defer func() {
		if err != nil {
			if derr := delInProcess(bn.recDir, rec, netnsPath); derr != nil {
				log.Error("undoing a failed in-process network ADD", "pod", id, "err", derr)
			}
		}
	}()

	br, err := ensureBridge(bn.bridge)
	if err != nil {
		return nil, err
	}
	netns, err := ns.GetNS(netnsPath)
	if err != nil {
		return nil, fmt.Errorf("open netns %q: %w", netnsPath, err)
	}
	defer netns.Close()

	hostIf := &current.Interface{}
	contIf := &current.Interface{Sandbox: netns.Path()}
	if err := netns.Do(func(hostNS ns.NetNS) error {
		hostVeth, contVeth, err := ip.SetupVeth(podIfName, 0, "", hostNS)
		if err != nil {
			return err
		}
		hostIf.Name, contIf.Name, contIf.Mac = hostVeth.Name, contVeth.Name, contVeth.HardwareAddr.String()
		return nil
	}); err != nil {
		return nil, err
	}
	// Looked up again: its index changed with the move to this namespace.
	hostVeth, err := netlinksafe.LinkByName(hostIf.Name)
	if err != nil {
		return nil, fmt.Errorf("look up %q: %w", hostIf.Name, err)
	}
	if err := netlink.LinkSetMaster(hostVeth, br); err != nil {
		return nil, fmt.Errorf("connect %q to bridge %q: %w", hostIf.Name, bn.bridge, err)
	}
	// kube-proxy's hairpin traffic (a pod reaching itself via a Service)
	// needs it, as the built-in config's hairpinMode says.
	if err := netlink.LinkSetHairpin(hostVeth, true); err != nil {
		return nil, fmt.Errorf("hairpin mode on %q: %w", hostIf.Name, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	result := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{{Name: bn.bridge}, hostIf, contIf},
	}
	if result.IPs, err = bn.allocate(id); err != nil {
		return nil, err
	}
	result.Routes = bn.ipam.Routes
	gws := gateways(result)

	if err := netns.Do(func(ns.NetNS) error {
		_, _ = sysctl.Sysctl(fmt.Sprintf("net/ipv6/conf/%s/accept_dad", podIfName), "0")
		_, _ = sysctl.Sysctl(fmt.Sprintf("net/ipv4/conf/%s/arp_notify", podIfName), "1")
		return ipam.ConfigureIface(podIfName, result)
	}); err != nil {
		return nil, err
	}
	for _, gw := range gws {
		family := netlink.FAMILY_V4
		if gw.IP.To4() == nil {
			family = netlink.FAMILY_V6
		}
		if err := ensureAddr(br, family, gw); err != nil {
			return nil, err
		}
		if family == netlink.FAMILY_V4 {
			err = ip.EnableIP4Forward()
		} else {
			err = ip.EnableIP6Forward()
		}
		if err != nil {
			return nil, fmt.Errorf("enable forwarding: %w", err)
		}
	}

	if hostVeth, err = waitPortUp(ctx, hostIf.Name); err != nil {
		return nil, err
	}
	hostIf.Mac = hostVeth.Attrs().HardwareAddr.String()
	// The bridge's MAC may have changed with its first port.
	if br, err = bridgeByName(bn.bridge); err != nil {
		return nil, err
	}
	result.Interfaces[0].Mac = br.Attrs().HardwareAddr.String()

	out, err := result.GetAsVersion(cniVersion)
	if err != nil {
		return nil, err
	}
	if rec.Result, err = json.Marshal(out); err != nil {
		return nil, err
	}
	if err := writeRecord(bn.recDir, rec); err != nil {
		return nil, fmt.Errorf("record in-process network of pod %s: %w", id, err)
	}
	return result, nil
}

// allocate takes an IP per range from host-local's store for (id, eth0),
// under the store's file lock, exactly as the host-local plugin does.
func (bn *bridgeNet) allocate(id string) ([]*current.IPConfig, error) {
	store, err := disk.New(bn.ipam.Name, bn.ipam.DataDir)
	if err != nil {
		return nil, fmt.Errorf("open IP lease store: %w", err)
	}
	defer store.Close()
	var ips []*current.IPConfig
	var allocs []*allocator.IPAllocator
	for idx := range bn.ipam.Ranges {
		rs := bn.ipam.Ranges[idx] // the allocator gets its own copy
		a := allocator.NewIPAllocator(&rs, store, idx)
		ipc, err := a.Get(id, podIfName, nil)
		if err != nil {
			for _, a := range allocs {
				_ = a.Release(id, podIfName)
			}
			return nil, fmt.Errorf("allocate an IP for range %d: %w", idx, err)
		}
		allocs = append(allocs, a)
		ips = append(ips, ipc)
	}
	return ips, nil
}

// gateways points the result's IPs at the pod's interface and fills in
// their gateway (the range's first address, host-local's default), and
// returns the addresses the bridge gets: the bridge plugin's calcGateways
// with isGateway and without isDefaultGateway.
func gateways(result *current.Result) []*net.IPNet {
	var gws []*net.IPNet
	for _, ipc := range result.IPs {
		ipc.Interface = current.Int(2)
		if ipc.Gateway == nil {
			ipc.Gateway = ip.NextIP(ipc.Address.IP.Mask(ipc.Address.Mask))
		}
		gws = append(gws, &net.IPNet{IP: ipc.Gateway, Mask: ipc.Address.Mask})
	}
	return gws
}

// delInProcess undoes an in-process ADD, any part of it: deletes the pod's
// eth0 (its veth peer on the bridge goes with it), releases the pod's
// leases, then drops the record. Absent pieces are no error, so it can be
// repeated; the record goes only when everything else has.
func delInProcess(recDir string, r *inprocRecord, netnsPath string) error {
	if netnsPath != "" {
		err := ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
			if err := ip.DelLinkByName(r.IfName); err != nil && !errors.Is(err, ip.ErrLinkNotFound) {
				return err
			}
			return nil
		})
		var gone ns.NSPathNotExistErr
		if err != nil && !errors.As(err, &gone) {
			// A namespace that is gone took the veth with it.
			return fmt.Errorf("delete %s of pod %s: %w", r.IfName, r.ContainerID, err)
		}
	}
	store, err := disk.New(r.Network, r.DataDir)
	if err != nil {
		return fmt.Errorf("open IP lease store: %w", err)
	}
	defer store.Close()
	if err := store.Lock(); err != nil {
		return fmt.Errorf("lock IP lease store: %w", err)
	}
	err = store.ReleaseByID(r.ContainerID, r.IfName)
	if uerr := store.Unlock(); err == nil {
		err = uerr
	}
	if err != nil {
		return fmt.Errorf("release IP of pod %s: %w", r.ContainerID, err)
	}
	// A temp file left by a crash in writeRecord goes too, then the record.
	for _, f := range []string{recordPath(recDir, r.ContainerID) + ".tmp", recordPath(recDir, r.ContainerID)} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// ensureBridge makes the bridge if missing and sets it up, as the bridge
// plugin does (default MTU, not promiscuous, no VLAN filtering; router
// advertisements ignored: the routes are ours).
func ensureBridge(name string) (*netlink.Bridge, error) {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil && !errors.Is(err, syscall.EEXIST) {
		return nil, fmt.Errorf("create bridge %q: %w", name, err)
	}
	br, err := bridgeByName(name)
	if err != nil {
		return nil, err
	}
	_, _ = sysctl.Sysctl(fmt.Sprintf("net/ipv6/conf/%s/accept_ra", name), "0")
	if br.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(br); err != nil {
			return nil, fmt.Errorf("set bridge %q up: %w", name, err)
		}
	}
	return br, nil
}

func bridgeByName(name string) (*netlink.Bridge, error) {
	l, err := netlinksafe.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("look up bridge %q: %w", name, err)
	}
	br, ok := l.(*netlink.Bridge)
	if !ok {
		return nil, fmt.Errorf("%q exists but is not a bridge", name)
	}
	return br, nil
}

// ensureAddr gives the bridge the gateway address, as the bridge plugin
// does: an IPv4 bridge holding another address is an error (its
// forceAddress is off), and the bridge's MAC is pinned to itself so that
// it does not follow its ports as they come and go.
func ensureAddr(br netlink.Link, family int, gw *net.IPNet) error {
	addrs, err := netlinksafe.AddrList(br, family)
	if err != nil && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("list addresses of %q: %w", br.Attrs().Name, err)
	}
	for _, a := range addrs {
		if a.IPNet.String() == gw.String() {
			return nil
		}
		if family == netlink.FAMILY_V4 || a.IPNet.Contains(gw.IP) || gw.Contains(a.IPNet.IP) {
			return fmt.Errorf("%q already has an IP address different from %v", br.Attrs().Name, gw)
		}
	}
	if err := netlink.AddrAdd(br, &netlink.Addr{IPNet: gw}); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("add %s to %q: %w", gw, br.Attrs().Name, err)
	}
	mac := br.Attrs().HardwareAddr
	if slices.Equal(mac, make(net.HardwareAddr, len(mac))) {
		// A bridge whose last port left before its MAC was pinned (an
		// earlier ADD failed here) has none until a port joins; the pod's
		// has by now. (The plugin would fail: it pins the all-zero MAC.)
		l, err := netlinksafe.LinkByName(br.Attrs().Name)
		if err != nil {
			return fmt.Errorf("look up bridge %q: %w", br.Attrs().Name, err)
		}
		mac = l.Attrs().HardwareAddr
	}
	if err := netlink.LinkSetHardwareAddr(br, mac); err != nil {
		return fmt.Errorf("set the MAC of %q: %w", br.Attrs().Name, err)
	}
	return nil
}

// waitPortUp waits for the host veth to be up on the bridge, with the
// bridge plugin's back-off (0, 50, 500, 1000, 1000 ms), within ctx.
func waitPortUp(ctx context.Context, name string) (netlink.Link, error) {
	for i, d := range []time.Duration{0, 50, 500, 1000, 1000} {
		if d > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(d * time.Millisecond):
			}
		}
		l, err := netlinksafe.LinkByName(name)
		if err != nil {
			return nil, fmt.Errorf("look up %q: %w", name, err)
		}
		if l.Attrs().OperState == netlink.OperUp {
			return l, nil
		}
		if i == 4 {
			return nil, fmt.Errorf("bridge port %q in state %s", name, l.Attrs().OperState)
		}
	}
	panic("unreachable")
}
