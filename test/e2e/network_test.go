package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// Every daemon of these tests runs its pods on its own bridge and /24 with
// no default route and no masquerade (see framework/network.go): traffic
// stays between the node and the tests' pods.

// httpdPod runs a pod whose container serves "hello from <name>" on port.
func httpdPod(t *testing.T, d *framework.Daemon, pod *runtimeapi.PodSandboxConfig, name string, port int) string {
	t.Helper()
	podID := d.RunPod(t, pod)
	script := fmt.Sprintf("mkdir -p /www && echo hello from %s > /www/index.html && echo serving && exec httpd -f -p %d -h /www", name, port)
	cfg := framework.Sh("httpd", script)
	d.RunContainer(t, podID, pod, cfg)
	framework.WaitForLog(t, framework.LogPath(pod, cfg), "serving", 20*time.Second)
	return podID
}

// httpGet fetches url from the node, retrying while the server starts.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	var lastErr error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := client.Get(url)
		if err != nil {
			lastErr = err
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			lastErr = err
			continue
		}
		return string(body)
	}
	t.Fatalf("GET %s: %v", url, lastErr)
	return ""
}

func podIP(t *testing.T, d *framework.Daemon, podID string) string {
	t.Helper()
	ip := d.PodStatus(t, podID).GetNetwork().GetIp()
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		t.Fatalf("pod %s has IP %q: %v", podID, ip, err)
	}
	if !netip.MustParsePrefix(d.Subnet).Contains(addr) {
		t.Fatalf("pod IP %s is outside the daemon's subnet %s", ip, d.Subnet)
	}
	return ip
}

func TestNetworkPodToPod(t *testing.T) {
	d := framework.Shared(t)
	podA := d.PodConfig(t, "net-a")
	podB := d.PodConfig(t, "net-b")
	idB := httpdPod(t, d, podB, "b", 8080)
	idA := d.RunPod(t, podA)
	ipA, ipB := podIP(t, d, idA), podIP(t, d, idB)
	if ipA == ipB {
		t.Fatalf("both pods have IP %s", ipA)
	}

	// Pod to pod, over the bridge. (wget's own -T timeout crashes Debian's
	// busybox 1.35, hence timeout(1).)
	cfg := framework.Sh("client", fmt.Sprintf(
		"for i in $(seq 50); do timeout 3 wget -q -O- http://%s:8080/ && break; sleep 0.1; done; echo done", ipB))
	d.RunContainer(t, idA, podA, cfg)
	texts := []string{}
	for _, l := range framework.WaitForLog(t, framework.LogPath(podA, cfg), "done", 20*time.Second) {
		texts = append(texts, l.Text)
	}
	if !slices.Contains(texts, "hello from b") {
		t.Errorf("pod a got %q from pod b, want \"hello from b\"", texts)
	}

	// Node to pod, by the pod's IP.
	if got := httpGet(t, "http://"+ipB+":8080/"); strings.TrimSpace(got) != "hello from b" {
		t.Errorf("node got %q from pod b", got)
	}

	// A pod has no route off the node in these tests: only its subnet.
	route := framework.Sh("route", "cat /proc/net/route; echo done")
	d.RunContainer(t, idA, podA, route)
	for _, l := range framework.WaitForLog(t, framework.LogPath(podA, route), "done", 20*time.Second) {
		if f := strings.Fields(l.Text); len(f) > 2 && f[1] == "00000000" {
			t.Errorf("test pod has a default route: %s", l.Text)
		}
	}
}

// cleanupHostportChains removes, at the end of t, the portmap plugin's
// shared nat chains (and the jumps into them) if they did not exist before
// t; the plugin creates them on first use and never removes them.
func cleanupHostportChains(t *testing.T) {
	t.Helper()
	before := natRules(t)
	t.Cleanup(func() {
		rules := natRules(t)
		chains := []string{"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ"}
		for _, c := range chains {
			if slices.Contains(before, "-N "+c) || !slices.Contains(rules, "-N "+c) {
				continue
			}
			for _, r := range rules {
				if strings.HasPrefix(r, "-A "+c+" ") && strings.Contains(r, "CNI-DN-") {
					t.Logf("not removing %s: it still forwards ports (%s)", c, r)
					return
				}
			}
		}
		for _, c := range chains {
			if slices.Contains(before, "-N "+c) {
				continue
			}
			for _, r := range rules {
				if strings.HasSuffix(r, "-j "+c) && !strings.HasPrefix(r, "-A CNI-") {
					// -S quotes arguments (comments) for a shell.
					cmd := "iptables -t nat -D " + strings.TrimPrefix(r, "-A ")
					if out, err := exec.Command("sh", "-c", cmd).CombinedOutput(); err != nil {
						t.Errorf("%s: %v: %s", cmd, err, out)
					}
				}
			}
		}
		for _, c := range chains {
			if !slices.Contains(before, "-N "+c) && slices.Contains(rules, "-N "+c) {
				iptables(t, "-t", "nat", "-F", c)
				iptables(t, "-t", "nat", "-X", c)
			}
		}
		// Other test processes on the node may forward ports right now;
		// only a table nobody uses must be back to what it was.
		after := natRules(t)
		if !slices.Equal(after, before) && !slices.ContainsFunc(after, func(r string) bool { return strings.Contains(r, "CNI-DN-") }) {
			t.Errorf("nat table differs from before the test:\nbefore %q\nafter  %q", before, after)
		}
	})
}

func natRules(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("iptables", "-t", "nat", "-S").Output()
	if err != nil {
		t.Fatalf("iptables -t nat -S: %v", err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

func iptables(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
		t.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// freeHostPort returns a TCP port nothing listens on now.
func freeHostPort(t *testing.T) int32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

func TestNetworkHostPort(t *testing.T) {
	cleanupHostportChains(t)
	d := framework.Shared(t)
	hostPort := freeHostPort(t)
	pod := d.PodConfig(t, "hostport")
	pod.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 8080, HostPort: hostPort}}
	podID := httpdPod(t, d, pod, "hostport", 8080)
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", hostPort)); strings.TrimSpace(got) != "hello from hostport" {
		t.Errorf("127.0.0.1:%d answered %q", hostPort, got)
	}
	ctx := framework.Ctx(t)
	if _, err := d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	for _, r := range natRules(t) {
		if strings.Contains(r, podID) {
			t.Errorf("port forwarding rule left after StopPodSandbox: %s", r)
		}
	}
	// DEL is idempotent: a second stop, and a remove, still succeed.
	if _, err := d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Errorf("second StopPodSandbox: %v", err)
	}
	if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Errorf("RemovePodSandbox: %v", err)
	}
}

func TestNetworkHostNetworkPod(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "hostnet")
	pod.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	podID := d.RunPod(t, pod)
	cfg := framework.Sh("links", "echo links=$(ls /sys/class/net | tr '\\n' ' '); echo done")
	cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	d.RunContainer(t, podID, pod, cfg)
	var texts []string
	for _, l := range framework.WaitForLog(t, framework.LogPath(pod, cfg), "done", 20*time.Second) {
		texts = append(texts, l.Text)
	}
	got := strings.Fields(keyValues(texts)["links"])
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"lo", ifs[len(ifs)-1].Name} {
		if !slices.Contains(got, want) {
			t.Errorf("host-network pod sees links %v, want the host's (%s among them)", got, want)
		}
	}
	if ip := d.PodStatus(t, podID).GetNetwork().GetIp(); ip != "" {
		t.Errorf("host-network pod has pod IP %q, want none (kubelet uses the node's)", ip)
	}
}

// writeConflist installs a CNI network into the daemon's watched conf dir,
// the way a CNI DaemonSet does: written aside, then renamed into place.
func writeConflist(t *testing.T, d *framework.Daemon, file, content string) {
	t.Helper()
	tmp := filepath.Join(d.CNIConfDir, "."+file+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(d.CNIConfDir, file)); err != nil {
		t.Fatal(err)
	}
}

// waitUntil polls cond every 50 ms until it holds or timeout passes.
func waitUntil(timeout time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// waitNetwork polls Status until ok holds for the NetworkReady condition
// and the verbose network info (the network new pods join), and returns
// them.
func waitNetwork(t *testing.T, d *framework.Daemon, what string, ok func(c *runtimeapi.RuntimeCondition, info string) bool) (*runtimeapi.RuntimeCondition, string) {
	t.Helper()
	var cond *runtimeapi.RuntimeCondition
	var info string
	if !waitUntil(10*time.Second, func() bool {
		resp, err := d.Runtime.Status(framework.Ctx(t), &runtimeapi.StatusRequest{Verbose: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range resp.GetStatus().GetConditions() {
			if c.Type == runtimeapi.NetworkReady {
				cond = c
			}
		}
		info = resp.Info["network"]
		return cond != nil && ok(cond, info)
	}) {
		t.Fatalf("Status: never %s: last NetworkReady %v, network %q", what, cond, info)
	}
	return cond, info
}

func notReady(c *runtimeapi.RuntimeCondition, _ string) bool { return !c.Status }

// readyWith waits for network name to be the one in use.
func readyWith(name string) func(c *runtimeapi.RuntimeCondition, info string) bool {
	return func(c *runtimeapi.RuntimeCondition, info string) bool {
		return c.Status && strings.HasPrefix(info, name+" (")
	}
}

// bridgeConflist is a test network on the daemon's bridge and subnet (free
// when the built-in network is off), leases under dataDir, no route off
// the subnet and no masquerade.
func bridgeConflist(d *framework.Daemon, name, dataDir, extraPlugin string) string {
	return fmt.Sprintf(`{"cniVersion": "1.0.0", "name": %q, "plugins": [
  {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "dataDir": %q}}%s
]}`, name, d.Bridge, d.Subnet, dataDir, extraPlugin)
}

func TestNetworkInstalledLater(t *testing.T) {
	d := framework.StartDaemon(t, framework.Options{Config: "[network]\nbuiltin_network = false\n"})
	cond, _ := waitNetwork(t, d, "not ready", notReady)
	if cond.Reason == "" || !strings.Contains(cond.Message, d.CNIConfDir) {
		t.Errorf("NetworkReady=false without a reason naming the conf dir: %v", cond)
	}
	pod := d.PodConfig(t, "early")
	_, err := d.Runtime.RunPodSandbox(framework.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: pod})
	wantCode(t, "RunPodSandbox without a network", err, codes.FailedPrecondition)
	assertNoPods(t, d)

	dataDir := filepath.Join(d.Dir, "leases")
	writeConflist(t, d, "10-late.conflist", bridgeConflist(d, "e2e-late", dataDir, ""))
	waitNetwork(t, d, "ready with e2e-late", readyWith("e2e-late"))
	podID := d.RunPod(t, d.PodConfig(t, "late"))
	ip := podIP(t, d, podID)
	if leases := framework.Leases(filepath.Join(dataDir, "e2e-late")); !slices.Equal(leases, []string{ip}) {
		t.Errorf("leases %v, want [%s]", leases, ip)
	}

	// DEL after a restart, with the config gone and the network namespace
	// gone too (as after a crash that lost the mount) uses the cached ADD.
	d.Restart(t)
	if err := os.Remove(filepath.Join(d.CNIConfDir, "10-late.conflist")); err != nil {
		t.Fatal(err)
	}
	waitNetwork(t, d, "not ready", notReady)
	if err := syscall.Unmount(filepath.Join(d.StateDir, "sandboxes", podID, "netns"), syscall.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Runtime.StopPodSandbox(framework.Ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatalf("StopPodSandbox after restart, config removal and netns loss: %v", err)
	}
	if leases := framework.Leases(filepath.Join(dataDir, "e2e-late")); len(leases) > 0 {
		t.Errorf("leases left after StopPodSandbox: %v", leases)
	}
	// The kernel destroys a dead namespace's veth asynchronously.
	waitUntil(5*time.Second, func() bool {
		ports, _ := os.ReadDir(filepath.Join("/sys/class/net", d.Bridge, "brif"))
		return len(ports) == 0
	})
	assertBridgeEmpty(t, d)
}

func assertNoPods(t *testing.T, d *framework.Daemon) {
	t.Helper()
	if ids := podIDs(t, d, nil); len(ids) > 0 {
		t.Errorf("a failed RunPodSandbox left pods %v", ids)
	}
	if entries, _ := os.ReadDir(filepath.Join(d.StateDir, "sandboxes")); len(entries) > 0 {
		t.Errorf("a failed RunPodSandbox left pod dirs: %v", entries)
	}
	if m := d.Mounts(); len(m) > 0 {
		t.Errorf("a failed RunPodSandbox left mounts: %v", m)
	}
}

func assertBridgeEmpty(t *testing.T, d *framework.Daemon) {
	t.Helper()
	if ports, _ := os.ReadDir(filepath.Join("/sys/class/net", d.Bridge, "brif")); len(ports) > 0 {
		t.Errorf("veths left on %s: %v", d.Bridge, ports)
	}
}

// runPodErr runs a pod expected to fail and returns the error.
func runPodErr(t *testing.T, d *framework.Daemon, ctx context.Context, name string) error {
	t.Helper()
	_, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: d.PodConfig(t, name)})
	if err == nil {
		t.Fatalf("RunPodSandbox(%s) succeeded, want an error", name)
	}
	return err
}

func TestNetworkBrokenConfig(t *testing.T) {
	// Test plugins: one that hangs on ADD, one that fails it.
	bin := t.TempDir()
	hangPIDs := filepath.Join(bin, "hang.pids")
	for name, script := range map[string]string{
		"e2e-hang": "#!/bin/sh\n[ \"$CNI_COMMAND\" = ADD ] || exit 0\necho $$ >> " + hangPIDs + "\nexec sleep 600\n",
		"e2e-fail": "#!/bin/sh\n[ \"$CNI_COMMAND\" = ADD ] || exit 0\necho '{\"cniVersion\": \"1.0.0\", \"code\": 100, \"msg\": \"e2e-fail says no\"}'\nexit 1\n",
	} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d := framework.StartDaemon(t, framework.Options{Config: fmt.Sprintf("[network]\nbin_dirs = [%q, \"/usr/lib/cni\"]\n", bin)})
	ctx := framework.Ctx(t)

	// Bad JSON.
	broken := filepath.Join(d.CNIConfDir, "10-broken.conflist")
	writeConflist(t, d, "10-broken.conflist", `{"cniVersion": "1.0.0", "name": "broken", "plugins": [`)
	cond, _ := waitNetwork(t, d, "not ready", notReady)
	if !strings.Contains(cond.Message, broken) {
		t.Errorf("NetworkReady message %q does not name %s", cond.Message, broken)
	}
	err := runPodErr(t, d, ctx, "badjson")
	if !strings.Contains(err.Error(), broken) {
		t.Errorf("error %q does not name %s", err, broken)
	}
	assertNoPods(t, d)

	// A plugin that is not installed.
	writeConflist(t, d, "10-broken.conflist", `{"cniVersion": "1.0.0", "name": "broken", "plugins": [{"type": "no-such-plugin"}]}`)
	cond, _ = waitNetwork(t, d, "naming the missing plugin", func(c *runtimeapi.RuntimeCondition, _ string) bool {
		return !c.Status && strings.Contains(c.Message, "no-such-plugin")
	})
	if !strings.Contains(cond.Message, broken) {
		t.Errorf("NetworkReady message %q does not name %s", cond.Message, broken)
	}
	err = runPodErr(t, d, ctx, "noplugin2")
	if !strings.Contains(err.Error(), broken) || !strings.Contains(err.Error(), "no-such-plugin") {
		t.Errorf("error %q does not name the file and the plugin", err)
	}
	assertNoPods(t, d)

	// A plugin failing after the bridge made a veth and took a lease: both
	// are undone.
	dataDir := filepath.Join(d.Dir, "leases")
	writeConflist(t, d, "10-broken.conflist", bridgeConflist(d, "e2e-failing", dataDir, `, {"type": "e2e-fail"}`))
	waitNetwork(t, d, "ready with e2e-failing", readyWith("e2e-failing"))
	err = runPodErr(t, d, ctx, "failing")
	if !strings.Contains(err.Error(), "e2e-fail says no") || !strings.Contains(err.Error(), broken) {
		t.Errorf("error %q does not carry the plugin's message and the file", err)
	}
	assertNoPods(t, d)
	assertBridgeEmpty(t, d)
	if leases := framework.Leases(filepath.Join(dataDir, "e2e-failing")); len(leases) > 0 {
		t.Errorf("leases left by the failed ADD: %v", leases)
	}

	// A plugin that hangs: bounded by the request's deadline.
	writeConflist(t, d, "10-broken.conflist", `{"cniVersion": "1.0.0", "name": "e2e-hanging", "plugins": [{"type": "e2e-hang"}]}`)
	waitNetwork(t, d, "ready with e2e-hanging", readyWith("e2e-hanging"))
	short, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	err = runPodErr(t, d, short, "hanging")
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("RunPodSandbox with a hanging plugin took %v", took)
	}
	wantCode(t, "RunPodSandbox with a hanging plugin", err, codes.DeadlineExceeded)
	// berthd finishes its cleanup after the client gave up.
	if !waitUntil(10*time.Second, func() bool {
		entries, _ := os.ReadDir(filepath.Join(d.StateDir, "sandboxes"))
		return len(entries) == 0
	}) {
		t.Errorf("pod dir left after the hanging ADD")
	}
	assertNoPods(t, d)
	data, _ := os.ReadFile(hangPIDs)
	for _, pid := range strings.Fields(string(data)) {
		if _, err := os.Stat("/proc/" + pid); err == nil {
			t.Errorf("hanging plugin (pid %s) still runs after the deadline", pid)
			_ = exec.Command("kill", "-9", pid).Run()
		}
	}
}

func TestNetworkNoLeaks(t *testing.T) {
	cleanupHostportChains(t)
	d := framework.Shared(t)
	ctx := framework.Ctx(t)
	var ids []string
	for i := range 20 {
		pod := d.PodConfig(t, fmt.Sprintf("leak-%d", i))
		pod.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: freeHostPort(t)}}
		ids = append(ids, d.RunPod(t, pod))
	}
	seen := map[string]bool{}
	var ips []string
	for _, id := range ids {
		ip := podIP(t, d, id)
		if seen[ip] {
			t.Errorf("IP %s handed out twice", ip)
		}
		seen[ip] = true
		ips = append(ips, ip)
	}
	if leases := framework.Leases(d.LeaseDir()); len(leases) != 20 {
		t.Errorf("%d leases for 20 pods", len(leases))
	}
	if ports, _ := os.ReadDir(filepath.Join("/sys/class/net", d.Bridge, "brif")); len(ports) != 20 {
		t.Errorf("%d veths on the bridge for 20 pods", len(ports))
	}
	for _, id := range ids {
		if _, err := d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatal(err)
		}
	}
	assertBridgeEmpty(t, d)
	if leases := framework.Leases(d.LeaseDir()); len(leases) > 0 {
		t.Errorf("leases left: %v", leases)
	}
	// Rules of these pods name their IDs (comments) or IPs (DNAT targets);
	// other test processes may have rules of their own meanwhile.
	for _, r := range natRules(t) {
		for i := range ids {
			if strings.Contains(r, ids[i]) || strings.Contains(r, " "+ips[i]+":") {
				t.Errorf("iptables rule left: %s", r)
			}
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(d.StateDir, "cni", "cache", "results")); len(entries) > 0 {
		t.Errorf("CNI result cache entries left: %v", entries)
	}
	if m := d.Mounts(); len(m) > 0 {
		// Only the daemon's own base mounts may remain; the framework's
		// leak check reports any pod mount.
		for _, id := range ids {
			for _, mp := range m {
				if strings.Contains(mp, id) {
					t.Errorf("netns mount left: %s", mp)
				}
			}
		}
	}
}
