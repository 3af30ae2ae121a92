package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
)

// cniVersion is the spec version of the networks berth writes itself: the
// newest that Debian's plugins (1.1.x) speak.
const cniVersion = "1.0.0"

// confExtensions are the files taken from the conf dir, as other runtimes do.
var confExtensions = []string{".conflist", ".conf", ".json"}

// Builtin describes the network used while the conf dir holds no config.
type Builtin struct {
	Name   string // CNI network name
	Bridge string // bridge interface
	Subnet string // host-local range, CIDR
	// DefaultRoute gives pods a default route via the bridge; without it
	// they reach only the subnet (the node and other pods).
	DefaultRoute bool
	// IPMasq masquerades pod traffic leaving the subnet: with one rule set
	// for the subnet that the Manager installs when it loads the network
	// (see masq.go), not with the bridge plugin's per-pod ipMasq.
	IPMasq bool
	// InProcess runs the network in berthd (inprocess.go) for pods without
	// a hostPort; false: the plugins, through libcni, for every pod.
	InProcess bool
	// PrepareAhead lets pods of the in-process network take a namespace
	// attached ahead of them (Manager.Preparable, sandbox's prepared.go).
	PrepareAhead bool
	// DataDir is host-local's lease directory (one subdirectory per
	// network name). Under berthd's state dir it is emptied at reboot,
	// together with the pods that held the leases.
	DataDir string
}

// ConfList renders the built-in network: bridge with host-local IPAM, then
// portmap for hostPort. The bridge's ipMasq is always off: IPMasq is done at
// node level (EnsureMasquerade), which spares each pod's ADD and DEL the
// plugin's iptables work. portmap's "snat" makes 127.0.0.1:<hostPort> work: it
// sets route_localnet on the bridge and masquerades the localhost-sourced
// connections it DNATs into the pod.
func (b Builtin) ConfList() ([]byte, error) {
	ipam, err := b.ipam()
	if err != nil {
		return nil, err
	}
	list := map[string]any{
		"cniVersion": cniVersion,
		"name":       b.Name,
		"plugins": []map[string]any{
			{
				"type":        "bridge",
				"bridge":      b.Bridge,
				"isGateway":   true,
				"ipMasq":      false,
				"hairpinMode": true,
				"ipam":        ipam,
			},
			{
				"type":         "portmap",
				"capabilities": map[string]bool{"portMappings": true},
				"snat":         true,
			},
		},
	}
	return json.MarshalIndent(list, "", "  ")
}

// ipam is the bridge plugin's "ipam" section: host-local over the subnet.
// The in-process built-in network (inprocess.go) reads the same section,
// so that both paths allocate alike from the one lease store.
func (b Builtin) ipam() (map[string]any, error) {
	prefix, err := netip.ParsePrefix(b.Subnet)
	if err != nil {
		return nil, fmt.Errorf("built-in network subnet %q: %w", b.Subnet, err)
	}
	ipam := map[string]any{
		"type":    "host-local",
		"ranges":  [][]map[string]string{{{"subnet": prefix.Masked().String()}}},
		"dataDir": b.DataDir,
	}
	if b.DefaultRoute {
		dst := "0.0.0.0/0"
		if prefix.Addr().Is6() {
			dst = "::/0"
		}
		ipam["routes"] = []map[string]string{{"dst": dst}}
	}
	return ipam, nil
}

// loopbackNetwork is the network name under which berthd up to this
// version ran the loopback plugin for "lo" (as containerd and CRI-O do).
// The pod's "lo" is now brought up in-process when its network namespace
// is made (sandbox.pinNamespaces), which is all that plugin's ADD did; its
// DEL only set "lo" down in a namespace about to go. Cached attachments of
// it left by an older berthd are dropped without running it.
const loopbackNetwork = "cni-loopback"

// builtinSource names the built-in network where a file name would go.
const builtinSource = "built-in network"

// netConf is the network pods are attached to, or why there is none.
type netConf struct {
	list *libcni.NetworkConfigList
	// noPorts is list without its portmap plugins, for pods with no
	// hostPort (nil: list has none to drop). portmap's ADD without port
	// mappings only passes the previous result on, yet costs a plugin
	// exec, and its DEL scans iptables. The list an ADD ran is what
	// libcni caches and Teardown's DEL replays, so a pod that had
	// mappings still gets portmap's DEL.
	noPorts *libcni.NetworkConfigList
	source  string // the file it came from, or builtinSource
	err     error  // non-nil: no network is usable
}

// selectConf picks the network: the first config file in confDir by file
// name, else the built-in one (when b is not nil). Every plugin it names
// must be present in binDirs, so that a missing binary shows up in Status
// rather than halfway through a pod's ADD.
func selectConf(confDir string, binDirs []string, b *Builtin) *netConf {
	files, err := libcni.ConfFiles(confDir, confExtensions)
	if err != nil {
		return &netConf{err: fmt.Errorf("read CNI config dir %s: %w", confDir, err)}
	}
	files = visible(files)
	var n *netConf
	switch {
	case len(files) > 0:
		n = &netConf{source: files[0]}
		n.list, n.err = loadFile(files[0])
	case b != nil:
		n = &netConf{source: builtinSource}
		data, err := b.ConfList()
		if err == nil {
			n.list, err = libcni.NetworkConfFromBytes(data)
		}
		n.err = err
	default:
		return &netConf{err: fmt.Errorf("no CNI network config in %s (the built-in network is off): install one", confDir)}
	}
	if n.err == nil {
		n.err = checkPlugins(n.list, binDirs)
	}
	if n.err == nil {
		n.noPorts, n.err = withoutPlugins(n.list, portmapType)
	}
	if n.err != nil {
		n.err = fmt.Errorf("CNI config %s: %w", n.source, n.err)
		n.list = nil
	}
	return n
}

// visible drops editor and temp files (".name.conf.swp" style names start
// with a dot) that a half-finished install may leave.
func visible(files []string) []string {
	out := files[:0]
	for _, f := range files {
		if !strings.HasPrefix(filepath.Base(f), ".") {
			out = append(out, f)
		}
	}
	return out
}

// loadFile reads a .conflist, or a single-plugin .conf/.json which it wraps
// into a list of one.
func loadFile(path string) (*libcni.NetworkConfigList, error) {
	if filepath.Ext(path) == ".conflist" {
		return libcni.NetworkConfFromFile(path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var plugin map[string]any
	if err := json.Unmarshal(data, &plugin); err != nil {
		return nil, fmt.Errorf("error parsing configuration: %w", err)
	}
	if _, ok := plugin["plugins"]; ok {
		// A list under a .conf name: take it as one.
		return libcni.NetworkConfFromBytes(data)
	}
	name, _ := plugin["name"].(string)
	version, _ := plugin["cniVersion"].(string)
	wrapped, err := json.Marshal(map[string]any{"name": name, "cniVersion": version, "plugins": []any{plugin}})
	if err != nil {
		return nil, err
	}
	return libcni.NetworkConfFromBytes(wrapped)
}

// portmapType is the CNI reference plugin for hostPort.
const portmapType = "portmap"

// withoutPlugins returns list without the chained plugins of type typ (nil
// when there are none to drop). Only plugins after the first go: a chained
// plugin gets the previous one's result and passes it on. One with its own
// static runtimeConfig stays: it may act without the pod's capability args.
// A list whose plugins are not all inline (libcni also loads plugin files
// from a directory named after the network) is left whole, since the
// cached config must describe every plugin that ran.
func withoutPlugins(list *libcni.NetworkConfigList, typ string) (*libcni.NetworkConfigList, error) {
	var raw map[string]any
	if err := json.Unmarshal(list.Bytes, &raw); err != nil {
		return nil, err
	}
	inline, _ := raw["plugins"].([]any)
	if len(inline) != len(list.Plugins) {
		return nil, nil
	}
	var keep []any
	for i, p := range list.Plugins {
		if i > 0 && p.Network.Type == typ {
			if conf, ok := inline[i].(map[string]any); ok && conf["runtimeConfig"] == nil {
				continue
			}
		}
		keep = append(keep, inline[i])
	}
	if len(keep) == len(inline) {
		return nil, nil
	}
	raw["plugins"] = keep
	data, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	return libcni.NetworkConfFromBytes(data)
}

// checkPlugins reports the first plugin of list whose binary is missing.
func checkPlugins(list *libcni.NetworkConfigList, binDirs []string) error {
	if list.Name == "" {
		return errors.New("network has no name")
	}
	for i, p := range list.Plugins {
		if err := findPlugin(p.Network.Type, binDirs); err != nil {
			return fmt.Errorf("network %q, plugin %d: %w", list.Name, i+1, err)
		}
	}
	return nil
}

func findPlugin(typ string, binDirs []string) error {
	if _, err := invoke.FindInPath(typ, binDirs); err != nil {
		return fmt.Errorf("plugin %q not found in %s: install it (Debian: containernetworking-plugins) or fix network.bin_dirs",
			typ, strings.Join(binDirs, ", "))
	}
	return nil
}
