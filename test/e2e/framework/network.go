package framework

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/berth-project/berth/internal/network"
)

// Every daemon gets a pod network of its own that keeps test traffic on the
// node: the built-in bridge network with a bridge and subnet unique to the
// daemon, no default route in the pods and no masquerade, and a CNI conf dir
// in its temp dir. A test's Options.Config may override any of these keys.

// testSubnets is where daemons' subnets are picked from: /24s in
// 10.200.0.0/13, away from the usual pod and service ranges.
var testSubnets = netip.MustParsePrefix("10.200.0.0/13")

// newTestNetwork picks a bridge name (at most 15 bytes) and a /24 that no
// interface on the host has an address in.
func newTestNetwork() (bridge, subnet string) {
	bridge = "berth-e2e-" + randHex(3)[:5]
	used := hostPrefixes()
	for range 100 {
		a := testSubnets.Addr().As4()
		n := rand.IntN(1 << (24 - testSubnets.Bits()))
		a[1] += byte(n >> 8)
		a[2] = byte(n)
		p := netip.PrefixFrom(netip.AddrFrom4(a), 24)
		if !overlaps(p, used) {
			return bridge, p.String()
		}
	}
	return bridge, "10.200.0.0/24"
}

func hostPrefixes() []netip.Prefix {
	var out []netip.Prefix
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

func overlaps(p netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if u.Overlaps(p) {
			return true
		}
	}
	return false
}

// writeConfig writes berthd's config file (the test's Options.Config) and,
// beside it in berth.d, the daemon's test network settings for every
// [network] key the test's config does not set. It returns the file's path.
func (d *Daemon) writeConfig() (string, error) {
	p := filepath.Join(d.Dir, "berth.toml")
	if err := os.WriteFile(p, []byte(d.opts.Config), 0o644); err != nil {
		return "", err
	}
	var given struct {
		Network map[string]any `toml:"network"`
	}
	// A config that does not parse is the test's business: berthd says so.
	_, _ = toml.Decode(d.opts.Config, &given)
	defaults := map[string]any{
		"conf_dir":        d.CNIConfDir,
		"default_bridge":  d.Bridge,
		"default_subnet":  d.Subnet,
		"builtin_network": true,
		"default_route":   false,
		"default_ip_masq": false,
		// Off: the checks and counts of veths, leases and mounts while
		// berthd runs would see the prepared one. Tests of it, critest
		// and the kubelet suite turn it on.
		"prepare_ahead": false,
	}
	for k := range given.Network {
		delete(defaults, k)
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(map[string]any{"network": defaults}); err != nil {
		return "", err
	}
	dropIns := filepath.Join(d.Dir, "berth.d")
	if err := os.MkdirAll(dropIns, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dropIns, "00-e2e-network.toml"), buf.Bytes(), 0o644); err != nil {
		return "", err
	}
	return p, nil
}

// LeaseDir is where host-local keeps the built-in network's IP leases.
func (d *Daemon) LeaseDir() string { return filepath.Join(d.StateDir, "cni", "networks", "berth") }

// networkLeaks reports veths still on the daemon's bridge and IP leases
// still held in its built-in network, and in-process network records
// (internal/network/inprocess.go) of pods gone.
func (d *Daemon) networkLeaks() []string {
	var leaks []string
	ports, _ := os.ReadDir(filepath.Join("/sys/class/net", d.Bridge, "brif"))
	for _, p := range ports {
		leaks = append(leaks, fmt.Sprintf("veth left on bridge %s: %s", d.Bridge, p.Name()))
	}
	for _, ip := range Leases(d.LeaseDir()) {
		// The content (pod id, interface) says whose it was.
		owner, _ := os.ReadFile(filepath.Join(d.LeaseDir(), ip))
		leaks = append(leaks, fmt.Sprintf("IP lease left in %s: %s (%q)", d.LeaseDir(), ip, owner))
	}
	recs, _ := os.ReadDir(filepath.Join(d.StateDir, "cni", "cache", "inprocess"))
	for _, r := range recs {
		leaks = append(leaks, fmt.Sprintf("in-process network record left: %s", r.Name()))
	}
	return leaks
}

// Leases lists the addresses host-local has handed out in dir.
func Leases(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if name := e.Name(); name != "lock" && !strings.HasPrefix(name, "last_reserved_ip") {
			out = append(out, name)
		}
	}
	return out
}

// removeNetwork deletes the daemon's bridge (the bridge plugin creates it
// on first use and never removes it) and the built-in network's masquerade
// rules of its subnet, which berthd leaves in place as CNI leaves its
// shared chains (only tests that turn default_ip_masq on have any).
func (d *Daemon) removeNetwork() {
	if _, err := os.Stat(filepath.Join("/sys/class/net", d.Bridge)); err == nil {
		_ = exec.Command("ip", "link", "del", d.Bridge).Run()
	}
	if p, err := netip.ParsePrefix(d.Subnet); err == nil {
		_ = network.RemoveMasquerade(p)
	}
}

const ipForward = "/proc/sys/net/ipv4/ip_forward"

// keepIPForward returns a function that puts net.ipv4.ip_forward back to
// its value now: the bridge plugin turns forwarding on for a gateway
// bridge, and the tests' pods, which have no route off the node, do not
// need it left on.
func keepIPForward() func() {
	before, err := os.ReadFile(ipForward)
	if err != nil {
		return func() {}
	}
	return func() {
		if now, err := os.ReadFile(ipForward); err == nil && !bytes.Equal(now, before) {
			_ = os.WriteFile(ipForward, before, 0o644)
		}
	}
}
