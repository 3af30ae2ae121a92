package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

// berthd keeps one pod network prepared ahead (network.prepare_ahead, on by
// default, off in the framework's daemons): a namespace pinned under
// <state>/prepared/<id> and attached in-process under the id the next pod
// without a hostPort gets (internal/sandbox/prepared.go).

// waitPreparedNet waits until berthd holds one prepared network other than
// not, fully attached (its in-process record has the result), and returns
// its id.
func waitPreparedNet(t *testing.T, d *framework.Daemon, not string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		entries, _ := os.ReadDir(filepath.Join(d.StateDir, "prepared"))
		if len(entries) == 1 && entries[0].Name() != not {
			id := entries[0].Name()
			if rec := inprocRecord(t, d, id); rec != nil && rec["result"] != nil {
				return id
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no prepared pod network after 10 s: %v", entries)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNetworkPrepared: a pod without a hostPort takes the prepared network
// (its id, namespace, veth and lease) and gets the network a pod set up by
// the plugins gets; the next one is prepared; a hostPort pod leaves it
// alone; a berthd killed with one prepared leaves it to the next berthd,
// which removes it; a berthd stopped removes its own (the framework's
// leak checks at the end).
func TestNetworkPrepared(t *testing.T) {
	cleanupHostportChains(t)
	d := framework.StartDaemon(t, framework.Options{Config: "[network]\nprepare_ahead = true\n"})
	prep := waitPreparedNet(t, d, "")
	prepNetns := filepath.Join(d.StateDir, "prepared", prep, "netns")
	if _, err := os.Stat(prepNetns); err != nil {
		t.Fatalf("prepared namespace pin: %v", err)
	}

	podA := d.PodConfig(t, "prepared-a")
	idA := httpdPod(t, d, podA, "a", 8080)
	if idA != prep {
		t.Fatalf("pod a is %s, want the prepared %s", idA, prep)
	}
	wantPath(t, d, idA, true)
	next := waitPreparedNet(t, d, prep)
	if _, err := os.Stat(filepath.Join(d.StateDir, "prepared", prep)); !os.IsNotExist(err) {
		t.Errorf("the taken network's prepared dir is still there: %v", err)
	}
	ipA := podIP(t, d, idA)
	if out := inPod(t, d, idA, "ip", "-4", "-o", "addr", "show", "eth0"); !strings.Contains(out, " "+ipA+"/24 ") {
		t.Errorf("pod a's status IP %s is not on its eth0: %s", ipA, out)
	}
	if got := httpGet(t, "http://"+ipA+":8080/"); strings.TrimSpace(got) != "hello from a" {
		t.Errorf("node got %q from pod a", got)
	}
	// The pod's own UTS namespace, made at its create, has its hostname.
	cfg := framework.Sh("name", "hostname; echo done")
	d.RunContainer(t, idA, podA, cfg)
	var texts []string
	for _, l := range framework.WaitForLog(t, framework.LogPath(podA, cfg), "done", 30*time.Second) {
		texts = append(texts, l.Text)
	}
	if !slices.Contains(texts, podA.Hostname) {
		t.Errorf("pod a's hostname: %q, want %s", texts, podA.Hostname)
	}

	// A hostPort pod runs the plugins, as without a prepared network, and
	// gets the same network shape as the pod that took it.
	podC := d.PodConfig(t, "prepared-hostport")
	podC.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 8080, HostPort: freeHostPort(t)}}
	idC := d.RunPod(t, podC)
	wantPath(t, d, idC, false)
	if idC == next {
		t.Fatalf("the hostPort pod took the prepared network %s", next)
	}
	if a, c := podNetShape(t, d, idA), podNetShape(t, d, idC); a != c {
		t.Errorf("a prepared pod's network differs from the plugins':\n%s\n---\n%s", a, c)
	}
	if got := waitPreparedNet(t, d, ""); got != next {
		t.Errorf("prepared %s, want %s still", got, next)
	}
	ipNext, _ := inprocRecord(t, d, next)["result"].(map[string]any)["ips"].([]any)[0].(map[string]any)["address"].(string)
	ipNext, _, _ = strings.Cut(ipNext, "/")
	if leases := framework.Leases(d.LeaseDir()); len(leases) != 3 || !slices.Contains(leases, ipNext) {
		t.Errorf("leases %v, want pod a's, pod c's and the prepared %s", leases, ipNext)
	}

	// Killed with one prepared: the next berthd tears it down (record,
	// lease, veth, pin, dir) and prepares its own.
	d.Kill9(t)
	d.Restart(t)
	again := waitPreparedNet(t, d, next)
	if rec := inprocRecord(t, d, next); rec != nil {
		t.Errorf("the killed berthd's prepared network still has its record: %v", rec)
	}
	for _, m := range d.Mounts() {
		if strings.Contains(m, next) {
			t.Errorf("mount of the killed berthd's prepared network left: %s", m)
		}
	}
	if leases := framework.Leases(d.LeaseDir()); len(leases) != 3 {
		t.Errorf("leases after the restart %v, want pod a's, pod c's and the new prepared one's (%s)", leases, again)
	}
	if ports, _ := os.ReadDir(filepath.Join("/sys/class/net", d.Bridge, "brif")); len(ports) != 3 {
		t.Errorf("bridge ports after the restart: %d, want 3", len(ports))
	}
	stopRemove(t, d, idA)
	stopRemove(t, d, idC)
}
