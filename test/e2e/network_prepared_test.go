package e2e

import (
	"fmt"
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

// TestPausePrepared: after a pod that shares its PID namespace, the next
// pod is prepared with a pause process of its own in its namespaces
// (internal/sandbox/prepared.go). A shared-PID pod takes it: it is PID 1
// of the pod's containers, isolated as one started at the create, moved
// into the pod's cgroup, in the pod's network, IPC and UTS namespaces
// with the pod's hostname, and kept across a kill of berthd. A pod with a
// PID namespace per container or in the host's IPC namespace ends it; one
// left by a killed berthd is ended by the next.
func TestPausePrepared(t *testing.T) {
	d := framework.StartDaemon(t, framework.Options{Config: "[network]\nprepare_ahead = true\n"})
	first := waitPreparedNet(t, d, "")
	_, idA := sharedPIDPod(t, d, "prepared-pause-a")
	if idA != first {
		t.Fatalf("pod a is %s, want the prepared %s", idA, first)
	}
	prep := waitPreparedPause(t, d, idA)
	podB, idB := sharedPIDPod(t, d, "prepared-pause-b")
	if idB != prep {
		t.Fatalf("pod b is %s, want the prepared %s", idB, prep)
	}
	pids := pausePIDs(t, idB)
	if len(pids) != 1 {
		t.Fatalf("pause processes of pod b: %v, want the prepared one", pids)
	}
	dir := filepath.Join(d.StateDir, "sandboxes", idB)
	for _, ns := range []string{"net", "ipc", "uts", "pid"} {
		pinned, err := os.Stat(filepath.Join(dir, ns+"ns"))
		if err != nil {
			t.Fatal(err)
		}
		its, err := os.Stat(fmt.Sprintf("/proc/%d/ns/%s", pids[0], ns))
		if err != nil {
			t.Fatal(err)
		}
		if !os.SameFile(pinned, its) {
			t.Errorf("the pause process is not in pod b's %s namespace", ns)
		}
	}
	// As the pause process started at pod a's create has it (kubelet's
	// -998, or berthd's own where it may not go lower).
	adj := func(pid int) string {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid))
		return strings.TrimSpace(string(b))
	}
	if pa := pausePIDs(t, idA); len(pa) != 1 || adj(pa[0]) != adj(pids[0]) || adj(pids[0]) == "" {
		t.Errorf("pause process oom_score_adj %q, want pod a's (pause %v)", adj(pids[0]), pa)
	}
	cfg := inSharedPID(framework.Sh("name", "hostname; echo done"))
	st, out := runToExit(t, d, idB, podB, cfg)
	if st.ExitCode != 0 || !strings.Contains(out, podB.Hostname) {
		t.Errorf("pod b's hostname: exit %d, %q, want %s", st.ExitCode, out, podB.Hostname)
	}
	// Killed while pod b holds it, the next berthd keeps it as the pod's
	// (it names the prepared dir in its environment).
	d.Kill9(t)
	d.Restart(t)
	if after := pausePIDs(t, idB); len(after) != 1 || after[0] != pids[0] {
		t.Fatalf("pod b's pause process after a kill of berthd: %v, want %d", after, pids[0])
	}
	checkDirectPause(t, d, podB, idB)

	// A pod with a PID namespace per container ends the prepared one.
	prep = waitPreparedPause(t, d, idB)
	podC := d.PodConfig(t, "prepared-pause-c")
	idC := d.RunPod(t, podC)
	if idC != prep {
		t.Fatalf("pod c is %s, want the prepared %s", idC, prep)
	}
	if left := pausePIDs(t, idC); len(left) != 0 {
		t.Errorf("pod c kept the prepared pause process: %v", left)
	}
	if _, err := os.Stat(filepath.Join(d.StateDir, "sandboxes", idC, "pidns")); !os.IsNotExist(err) {
		t.Errorf("pod c kept the prepared PID namespace pin: %v", err)
	}
	stopRemove(t, d, idC)

	// So does a shared-PID pod in the host's IPC namespace (the prepared
	// one is in the prepared IPC namespace), which starts its own. Pod d
	// before it has the next pod prepared with a pause process again.
	_, idD := sharedPIDPod(t, d, "prepared-pause-d")
	prep = waitPreparedPause(t, d, idD)
	prepPause := pausePIDs(t, prep)
	podH := d.PodConfig(t, "prepared-pause-hostipc")
	podH.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	podH.Linux.SecurityContext.NamespaceOptions.Ipc = runtimeapi.NamespaceMode_NODE
	idH := d.RunPod(t, podH)
	if idH != prep {
		t.Fatalf("host-IPC pod is %s, want the prepared %s", idH, prep)
	}
	hp := pausePIDs(t, idH)
	hostIPC, _ := os.Readlink("/proc/self/ns/ipc")
	if len(hp) != 1 || slices.Equal(hp, prepPause) {
		t.Errorf("host-IPC pod's pause processes %v (the prepared one was %v), want one of its own", hp, prepPause)
	} else if its, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/ipc", hp[0])); its != hostIPC {
		t.Errorf("host-IPC pod's pause process in IPC namespace %s, want the host's %s", its, hostIPC)
	}
	stopRemove(t, d, idH)

	// Killed with a pause process prepared, the next berthd ends it, and
	// prepares one again (pod e, the last, shares its PID namespace), which
	// its stop at the test's end ends (the framework's leak checks).
	_, idE := sharedPIDPod(t, d, "prepared-pause-e")
	prep = waitPreparedPause(t, d, idE)
	d.Kill9(t)
	d.Restart(t)
	waitPreparedPause(t, d, prep)
	if left := pausePIDs(t, prep); len(left) != 0 {
		t.Errorf("the killed berthd's prepared pause process runs on: %v", left)
	}
	for _, id := range []string{idA, idD, idE} {
		stopRemove(t, d, id)
	}
}

// waitPreparedPause waits until berthd holds a prepared pod other than not
// with a pause process, and returns its id.
func waitPreparedPause(t *testing.T, d *framework.Daemon, not string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		id := waitPreparedNet(t, d, not)
		if _, err := os.Stat(filepath.Join(d.StateDir, "prepared", id, "pidns")); err == nil && len(pausePIDs(t, id)) == 1 {
			return id
		}
		if time.Now().After(deadline) {
			t.Fatalf("prepared pod %s has no pause process after 10 s", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
