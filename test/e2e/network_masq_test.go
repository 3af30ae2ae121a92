package e2e

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/network"
	"github.com/berth-project/berth/test/e2e/framework"
)

// masqRules returns the nat rules of berth's masquerade for subnet (in
// network.MasqChain) and the jumps to that chain from POSTROUTING.
func masqRules(t *testing.T, subnet string) (rules, jumps []string) {
	t.Helper()
	for _, r := range natRules(t) {
		switch {
		case strings.HasPrefix(r, "-A "+network.MasqChain+" ") && strings.Contains(r, "-s "+subnet+" "):
			rules = append(rules, r)
		case strings.HasPrefix(r, "-A POSTROUTING ") && strings.HasSuffix(r, "-j "+network.MasqChain):
			jumps = append(jumps, r)
		}
	}
	return rules, jumps
}

// podRules returns the nat rules that name pod id or its IP (the bridge
// plugin's per-pod ipMasq chain is jumped to with "-s <ip>/32" and a
// comment with the pod's id).
func podRules(t *testing.T, id, ip string) []string {
	t.Helper()
	var out []string
	for _, r := range natRules(t) {
		if strings.Contains(r, id) || (ip != "" && strings.Contains(r, " "+ip+"/32 ")) {
			out = append(out, r)
		}
	}
	return out
}

// outside is a network namespace on this machine standing for the world
// beyond the node: a veth pair with a /30, the host end addressed too, so
// that the node routes pod traffic to it. Nothing leaves the machine.
type outside struct {
	ns         string
	host, addr netip.Addr // the node's end, the outside end
}

func newOutside(t *testing.T) *outside {
	t.Helper()
	suffix := fmt.Sprintf("%04x", rand.IntN(1<<16))
	o := &outside{ns: "berth-e2e-out-" + suffix}
	// A /30 in 198.18.0.0/15 (reserved for benchmarking), used by no
	// interface here.
	used, _ := net.InterfaceAddrs()
	for range 100 {
		a := netip.AddrFrom4([4]byte{198, 18 + byte(rand.IntN(2)), byte(rand.IntN(256)), byte(rand.IntN(64) * 4)})
		p := netip.PrefixFrom(a, 30)
		free := true
		for _, u := range used {
			if up, err := netip.ParsePrefix(u.String()); err == nil && up.Overlaps(p) {
				free = false
			}
		}
		if free {
			o.host, o.addr = a.Next(), a.Next().Next()
			break
		}
	}
	if !o.host.IsValid() {
		t.Fatal("no free /30 in 198.18.0.0/15")
	}
	hostIf, peerIf := "bout-"+suffix, "bouti-"+suffix
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "del", o.ns).Run() // takes the veth pair with it
		if _, err := os.Stat("/sys/class/net/" + hostIf); err == nil {
			_ = exec.Command("ip", "link", "del", hostIf).Run()
		}
	})
	for _, args := range [][]string{
		{"netns", "add", o.ns},
		{"link", "add", hostIf, "type", "veth", "peer", "name", peerIf},
		{"link", "set", peerIf, "netns", o.ns},
		{"addr", "add", o.host.String() + "/30", "dev", hostIf},
		{"link", "set", hostIf, "up"},
		{"-n", o.ns, "addr", "add", o.addr.String() + "/30", "dev", peerIf},
		{"-n", o.ns, "link", "set", peerIf, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return o
}

// serveRemoteAddr serves HTTP inside the outside namespace on port,
// answering each request with the source address it came from.
func (o *outside) serveRemoteAddr(t *testing.T, port int) {
	t.Helper()
	l, err := o.listen(port)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprintf(w, "from=%s\n", host)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// listen opens a TCP listener in the outside namespace: a socket stays in
// the namespace it was made in, whatever thread serves it later.
func (o *outside) listen(port int) (net.Listener, error) {
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer self.Close()
	target, err := os.Open(filepath.Join("/var/run/netns", o.ns))
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	l, lerr := net.Listen("tcp", netip.AddrPortFrom(o.addr, uint16(port)).String())
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread is in the wrong namespace: leave it locked, so
		// that it exits with this goroutine.
		return nil, fmt.Errorf("back to the node's network namespace: %w", err)
	}
	runtime.UnlockOSThread()
	return l, lerr
}

// TestNetworkMasquerade: with default_ip_masq on, the built-in network
// masquerades with one rule set for its subnet (installed once, also across
// restarts), pods reach an off-subnet address masqueraded behind the node,
// and their ADD and DEL do no per-pod iptables work. Teardown leaves no rule.
func TestNetworkMasquerade(t *testing.T) {
	var subnet string
	t.Cleanup(func() { // after the daemon's own clean-up (cleanups run last first)
		if rules, _ := masqRules(t, subnet); len(rules) > 0 {
			t.Errorf("masquerade rules left after teardown: %q", rules)
		}
	})
	d := framework.StartDaemon(t, framework.Options{Config: "[network]\ndefault_route = true\ndefault_ip_masq = true\n"})
	subnet = d.Subnet
	assertOnce := func(when string) {
		t.Helper()
		rules, jumps := masqRules(t, d.Subnet)
		masq := 0
		for _, r := range rules {
			if strings.HasSuffix(r, "-j MASQUERADE") {
				masq++
			}
		}
		if len(rules) != 3 || masq != 1 || len(jumps) != 1 {
			t.Errorf("%s: masquerade rules %q and jumps %q, want 3 rules (one MASQUERADE) and one jump", when, rules, jumps)
		}
	}
	assertOnce("after start")
	d.Restart(t)
	assertOnce("after a restart")

	o := newOutside(t)
	o.serveRemoteAddr(t, 8080)
	pod := d.PodConfig(t, "masq")
	podID := d.RunPod(t, pod)
	ip := podIP(t, d, podID)
	if r := podRules(t, podID, ip); len(r) > 0 {
		t.Errorf("the pod's ADD made iptables rules of its own: %q", r)
	}
	cfg := framework.Sh("client", fmt.Sprintf(
		"for i in $(seq 50); do timeout 3 wget -q -O- http://%s:8080/ && break; sleep 0.1; done; echo done", o.addr))
	d.RunContainer(t, podID, pod, cfg)
	var texts []string
	for _, l := range framework.WaitForLog(t, framework.LogPath(pod, cfg), "done", 30*time.Second) {
		texts = append(texts, l.Text)
	}
	// The outside sees the node's address on its link, not the pod's.
	if from := keyValues(texts)["from"]; from != o.host.String() {
		t.Errorf("the outside saw the pod's request from %q, want the node's %s (masqueraded; pod IP %s); log %q", from, o.host, ip, texts)
	}

	ctx := framework.Ctx(t)
	if _, err := d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	if r := podRules(t, podID, ip); len(r) > 0 {
		t.Errorf("rules of the pod left after its DEL: %q", r)
	}
	assertOnce("after the pod's teardown") // the node's rules stay for the next pod
}

// TestNetworkMasqueradeOff: with default_ip_masq off (the e2e default)
// nothing of berth's masquerade is installed for the subnet.
func TestNetworkMasqueradeOff(t *testing.T) {
	d := framework.Shared(t)
	podID := d.RunPod(t, d.PodConfig(t, "nomasq"))
	ip := podIP(t, d, podID)
	if rules, _ := masqRules(t, d.Subnet); len(rules) > 0 {
		t.Errorf("masquerade rules with default_ip_masq off: %q", rules)
	}
	if r := podRules(t, podID, ip); len(r) > 0 {
		t.Errorf("the pod's ADD made iptables rules: %q", r)
	}
}

// TestNetworkMasqueradeCachedPerPod: a pod attached by an older berthd,
// whose built-in network ran the bridge plugin with ipMasq=true, still has
// its per-pod chain removed at teardown: DEL replays the config cached at
// ADD. Here the older network is a conflist of that shape; once it is gone
// the daemon is on its built-in network, as after an upgrade.
func TestNetworkMasqueradeCachedPerPod(t *testing.T) {
	d := framework.StartDaemon(t, framework.Options{})
	dataDir := filepath.Join(d.StateDir, "cni", "networks") // the built-in network's, as before
	writeConflist(t, d, "10-berth.conflist", fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "berth", "plugins": [
  {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "dataDir": %q}}]}`, d.Bridge, d.Subnet, dataDir))
	waitNetwork(t, d, "ready with the old-style network", func(c *runtimeapi.RuntimeCondition, info string) bool {
		return c.Status && strings.HasSuffix(info, "/10-berth.conflist)")
	})
	podID := d.RunPod(t, d.PodConfig(t, "oldmasq"))
	ip := podIP(t, d, podID)
	var chain string
	for _, r := range podRules(t, podID, ip) {
		if f := strings.Fields(r); strings.HasPrefix(r, "-A POSTROUTING ") && f[len(f)-2] == "-j" {
			chain = f[len(f)-1]
		}
	}
	if !strings.HasPrefix(chain, "CNI-") {
		t.Fatalf("the ipMasq=true network made no per-pod chain (rules %q): the test tests nothing", podRules(t, podID, ip))
	}
	if err := os.Remove(filepath.Join(d.CNIConfDir, "10-berth.conflist")); err != nil {
		t.Fatal(err)
	}
	waitNetwork(t, d, "back on the built-in network", func(c *runtimeapi.RuntimeCondition, info string) bool {
		return c.Status && info == "berth (built-in network)"
	})
	d.Restart(t)
	ctx := framework.Ctx(t)
	if _, err := d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	if r := podRules(t, podID, ip); len(r) > 0 {
		t.Errorf("per-pod masquerade rules left after DEL: %q", r)
	}
	if slices.Contains(natRules(t), "-N "+chain) {
		t.Errorf("the pod's chain %s is left after DEL", chain)
	}
}
