package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// The built-in network runs in-process by default (network.builtin_inprocess,
// internal/network/inprocess.go) for pods without a hostPort; pods with one,
// and every pod with the setting off, run the bridge, host-local and portmap
// plugins through libcni. Both share the bridge and host-local's lease store.

// inprocRecord is the in-process path's per-pod record (nil: none).
func inprocRecord(t *testing.T, d *framework.Daemon, id string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(d.StateDir, "cni", "cache", "inprocess", id+".json"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatalf("record of pod %s: %v", id, err)
	}
	return rec
}

// libcniCached reports whether libcni holds a cached ADD result of pod id.
func libcniCached(d *framework.Daemon, id string) bool {
	m, _ := filepath.Glob(filepath.Join(d.StateDir, "cni", "cache", "results", "*-"+id+"-*"))
	return len(m) > 0
}

// wantPath checks which path set pod id up.
func wantPath(t *testing.T, d *framework.Daemon, id string, inprocess bool) {
	t.Helper()
	rec, cached := inprocRecord(t, d, id), libcniCached(d, id)
	if inprocess && (rec == nil || cached) {
		t.Errorf("pod %s: in-process record %v, libcni cache %v; want the in-process path", id, rec != nil, cached)
	}
	if !inprocess && (rec != nil || !cached) {
		t.Errorf("pod %s: in-process record %v, libcni cache %v; want the plugins", id, rec != nil, cached)
	}
}

// inPod runs a host command in pod id's network namespace.
func inPod(t *testing.T, d *framework.Daemon, id string, args ...string) string {
	t.Helper()
	netns := filepath.Join(d.StateDir, "sandboxes", id, "netns")
	out, err := exec.Command("nsenter", append([]string{"--net=" + netns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter %s %v: %v: %s", id, args, err, out)
	}
	return string(out)
}

var (
	reMAC = regexp.MustCompile(`\b([0-9a-f]{2}:){5}[0-9a-f]{2}\b`)
	// qlen: pkg/ip (plugins 1.9) leaves eth0 the kernel's default queue
	// length, Debian's 1.1 plugin binaries set 0; a veth has no queue
	// (noqueue) either way.
	reIdx = regexp.MustCompile(`^\d+: |@if\d+|link-netnsid \d+|veth[0-9a-f]+|(valid|preferred)_lft \S+| qlen \d+|fe80::\S+`)
)

// podNetShape is the pod's eth0 and routes with its own addresses blanked,
// and the host side of its veth: what must be alike on both paths.
func podNetShape(t *testing.T, d *framework.Daemon, id string) string {
	t.Helper()
	ip := podIP(t, d, id)
	var b strings.Builder
	for _, args := range [][]string{{"ip", "-d", "link", "show", "eth0"}, {"ip", "addr", "show", "eth0"}, {"ip", "route"}} {
		out := inPod(t, d, id, args...)
		out = strings.ReplaceAll(out, ip+"/", "POD/")
		out = strings.ReplaceAll(out, "src "+ip, "src POD")
		out = reMAC.ReplaceAllString(out, "MAC")
		var lines []string
		for _, l := range strings.Split(out, "\n") {
			lines = append(lines, reIdx.ReplaceAllString(strings.TrimSpace(l), ""))
		}
		b.WriteString(strings.Join(lines, "\n"))
	}
	// Host side: on the bridge, hairpin on, up.
	link := inPod(t, d, id, "ip", "-o", "link", "show", "eth0")
	m := regexp.MustCompile(`@if(\d+)`).FindStringSubmatch(link)
	if m == nil {
		t.Fatalf("pod %s eth0 has no peer: %s", id, link)
	}
	out, err := exec.Command("ip", "-d", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, m[1]+": ") {
			for _, want := range []string{"master " + d.Bridge, "state UP", "hairpin on"} {
				if !strings.Contains(l, want) {
					t.Errorf("pod %s host veth: no %q in %s", id, want, l)
				}
			}
			fmt.Fprintf(&b, "\nhost mtu %s", regexp.MustCompile(`mtu \d+`).FindString(l))
		}
	}
	return b.String()
}

// stopRemove stops and removes pod id.
func stopRemove(t *testing.T, d *framework.Daemon, id string) {
	t.Helper()
	ctx := framework.Ctx(t)
	if _, err := d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("StopPodSandbox(%s): %v", id, err)
	}
	if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("RemovePodSandbox(%s): %v", id, err)
	}
}

// assertNetworkEmpty checks that no veth, lease, in-process record or
// libcni result is left.
func assertNetworkEmpty(t *testing.T, d *framework.Daemon) {
	t.Helper()
	assertBridgeEmpty(t, d)
	if leases := framework.Leases(d.LeaseDir()); len(leases) > 0 {
		t.Errorf("leases left: %v", leases)
	}
	for _, dir := range []string{"inprocess", "results"} {
		if entries, _ := os.ReadDir(filepath.Join(d.StateDir, "cni", "cache", dir)); len(entries) > 0 {
			t.Errorf("cni/cache/%s entries left: %v", dir, entries)
		}
	}
}

// setInProcess makes the daemon's next start use builtin_inprocess = on
// (a drop-in after the framework's own).
func setInProcess(t *testing.T, d *framework.Daemon, on bool) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(d.Dir, "berth.d", "50-inprocess.toml"), fmt.Appendf(nil, "[network]\nbuiltin_inprocess = %v\n", on), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestNetworkInProcess: pods without a hostPort are set up in-process, a
// hostPort pod through the plugins, on one bridge and lease store; they get
// distinct IPs, reach each other and the node, and leave nothing.
func TestNetworkInProcess(t *testing.T) {
	cleanupHostportChains(t)
	d := framework.Shared(t)
	podA, podB, podC := d.PodConfig(t, "inproc-a"), d.PodConfig(t, "inproc-b"), d.PodConfig(t, "inproc-hostport")
	hostPort := freeHostPort(t)
	podC.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 8080, HostPort: hostPort}}
	idA := httpdPod(t, d, podA, "a", 8080)
	idC := httpdPod(t, d, podC, "c", 8080)
	idB := d.RunPod(t, podB)
	wantPath(t, d, idA, true)
	wantPath(t, d, idB, true)
	wantPath(t, d, idC, false)
	ipA, ipB, ipC := podIP(t, d, idA), podIP(t, d, idB), podIP(t, d, idC)
	if ipA == ipB || ipA == ipC || ipB == ipC {
		t.Fatalf("pods share IPs: %s %s %s", ipA, ipB, ipC)
	}
	if leases := framework.Leases(d.LeaseDir()); len(leases) != 3 || !slices.Contains(leases, ipA) || !slices.Contains(leases, ipB) || !slices.Contains(leases, ipC) {
		t.Errorf("leases %v, want %s %s %s", leases, ipA, ipB, ipC)
	}
	// The status IP is what the pod's eth0 has and the stored result says.
	if out := inPod(t, d, idA, "ip", "-4", "-o", "addr", "show", "eth0"); !strings.Contains(out, " "+ipA+"/24 ") {
		t.Errorf("pod a's status IP %s is not on its eth0: %s", ipA, out)
	}
	rec := inprocRecord(t, d, idA)
	if ips, _ := rec["result"].(map[string]any)["ips"].([]any); len(ips) != 1 || !strings.HasPrefix(ips[0].(map[string]any)["address"].(string), ipA+"/") {
		t.Errorf("pod a's recorded result %v does not give it %s", rec["result"], ipA)
	}
	// Same shape as the plugins make.
	if a, c := podNetShape(t, d, idA), podNetShape(t, d, idC); a != c {
		t.Errorf("in-process pod's network differs from the plugins':\n%s\n---\n%s", a, c)
	}

	// Node to pods, pod to pods (both paths), and the hostPort.
	for ip, name := range map[string]string{ipA: "a", ipC: "c"} {
		if got := httpGet(t, "http://"+ip+":8080/"); strings.TrimSpace(got) != "hello from "+name {
			t.Errorf("node got %q from pod %s", got, name)
		}
	}
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", hostPort)); strings.TrimSpace(got) != "hello from c" {
		t.Errorf("node got %q from hostPort %d", got, hostPort)
	}
	cfg := framework.Sh("client", fmt.Sprintf(
		"for ip in %s %s; do for i in $(seq 50); do timeout 3 wget -q -O- http://$ip:8080/ && break; sleep 0.1; done; done; echo done", ipA, ipC))
	d.RunContainer(t, idB, podB, cfg)
	var texts []string
	for _, l := range framework.WaitForLog(t, framework.LogPath(podB, cfg), "done", 30*time.Second) {
		texts = append(texts, l.Text)
	}
	if !slices.Contains(texts, "hello from a") || !slices.Contains(texts, "hello from c") {
		t.Errorf("pod b got %q from pods a and c", texts)
	}

	for _, id := range []string{idA, idB, idC} {
		stopRemove(t, d, id)
	}
	assertNetworkEmpty(t, d)
}

// TestNetworkInProcessMixedPaths: pods set up by the plugins (as by an
// older berthd, or with builtin_inprocess off) and in-process ones share
// the lease store across restarts that switch the setting, and each is torn
// down by the path that set it up.
func TestNetworkInProcessMixedPaths(t *testing.T) {
	d := framework.StartDaemon(t, framework.Options{Config: "[network]\nbuiltin_inprocess = false\ndefault_route = true\n"})
	p1 := d.RunPod(t, d.PodConfig(t, "plugin-1"))
	wantPath(t, d, p1, false)

	setInProcess(t, d, true)
	d.Restart(t)
	i1 := d.RunPod(t, d.PodConfig(t, "inproc-1"))
	wantPath(t, d, i1, true)
	if podIP(t, d, i1) == podIP(t, d, p1) {
		t.Fatalf("in-process pod got the plugin pod's IP %s", podIP(t, d, p1))
	}
	// Same routes (default route on) and interfaces as the plugins'.
	if a, b := podNetShape(t, d, i1), podNetShape(t, d, p1); a != b {
		t.Errorf("in-process pod's network differs from the plugins':\n%s\n---\n%s", a, b)
	}
	if out := inPod(t, d, i1, "ip", "route"); !strings.Contains(out, "default via ") {
		t.Errorf("default_route on, in-process pod's routes: %s", out)
	}
	// The plugin pod goes through libcni, from its cache.
	stopRemove(t, d, p1)
	if libcniCached(d, p1) || slices.Contains(framework.Leases(d.LeaseDir()), podIP(t, d, i1)) == false {
		t.Errorf("plugin pod's teardown: cache left %v, in-process pod's lease gone", libcniCached(d, p1))
	}
	if n := len(framework.Leases(d.LeaseDir())); n != 1 {
		t.Errorf("%d leases with one pod left", n)
	}

	setInProcess(t, d, false)
	d.Restart(t)
	p2 := d.RunPod(t, d.PodConfig(t, "plugin-2"))
	wantPath(t, d, p2, false)
	if podIP(t, d, p2) == podIP(t, d, i1) {
		t.Fatalf("plugin pod got the in-process pod's IP %s", podIP(t, d, i1))
	}
	// The in-process pod is torn down in-process with the setting off.
	stopRemove(t, d, i1)
	if inprocRecord(t, d, i1) != nil {
		t.Errorf("in-process record of a removed pod left")
	}
	stopRemove(t, d, p2)
	assertNetworkEmpty(t, d)
}

// TestNetworkInProcessKill9: berthd killed with pods coming up (some in the
// middle of their network set-up) and running; after the restart every pod
// it knows is removed and nothing of any is left, also of those the
// start-up clean-up removed.
func TestNetworkInProcessKill9(t *testing.T) {
	d := framework.StartDaemon(t, framework.Options{})
	running := d.RunPod(t, d.PodConfig(t, "before-kill"))
	wantPath(t, d, running, true)

	kubelet, _ := d.Dial(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = kubelet.RunPodSandbox(context.Background(), &runtimeapi.RunPodSandboxRequest{Config: d.PodConfig(t, fmt.Sprintf("during-kill-%d", i))})
		}()
	}
	// Kill once some of them have their network records.
	if !waitUntil(10*time.Second, func() bool {
		e, _ := os.ReadDir(filepath.Join(d.StateDir, "cni", "cache", "inprocess"))
		return len(e) >= 4
	}) {
		t.Fatal("the pods' network set-ups never started")
	}
	d.Kill9(t)
	wg.Wait()
	d.Restart(t)
	// What the kill caught is up to timing: say it.
	if log, err := os.ReadFile(d.LogPath); err == nil {
		t.Logf("restart: %d half-created pods removed at start, %d pods recovered",
			strings.Count(string(log), "removing half-created pod"), len(podIDs(t, d, nil)))
	}
	for _, id := range podIDs(t, d, nil) {
		stopRemove(t, d, id)
	}
	assertNetworkEmpty(t, d)
	if m := d.Mounts(); len(m) > 0 {
		for _, mp := range m {
			if strings.Contains(mp, "/sandboxes/") {
				t.Errorf("pod mount left: %s", mp)
			}
		}
	}
}

// TestNetworkInProcessFailedAdd: an ADD that fails after the veth and the
// lease (the bridge holds another address, which the plugin refuses too)
// undoes them; the next pod works once the address is gone.
func TestNetworkInProcessFailedAdd(t *testing.T) {
	d := framework.StartDaemon(t, framework.Options{})
	other := netip.MustParsePrefix(d.Subnet).Addr().Next().Next().String() + "/24"
	for _, args := range [][]string{{"link", "add", d.Bridge, "type", "bridge"}, {"addr", "add", other, "dev", d.Bridge}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	err := runPodErr(t, d, framework.Ctx(t), "bridge-taken")
	if !strings.Contains(err.Error(), "already has an IP address") || !strings.Contains(err.Error(), "in-process") {
		t.Errorf("RunPodSandbox with the bridge's address taken: %v", err)
	}
	assertNoPods(t, d)
	assertNetworkEmpty(t, d)
	if out, err := exec.Command("ip", "addr", "del", other, "dev", d.Bridge).CombinedOutput(); err != nil {
		t.Fatalf("ip addr del: %v: %s", err, out)
	}
	id := d.RunPod(t, d.PodConfig(t, "after"))
	wantPath(t, d, id, true)
	stopRemove(t, d, id)
	assertNetworkEmpty(t, d)
}
