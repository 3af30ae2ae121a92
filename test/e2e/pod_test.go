package e2e

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

const nsScript = `echo ipc=$(readlink /proc/self/ns/ipc)
echo uts=$(readlink /proc/self/ns/uts)
echo net=$(readlink /proc/self/ns/net)
echo pid=$(readlink /proc/self/ns/pid)
echo hostname=$(hostname)
echo links=$(ls /sys/class/net | tr '\n' ' ')
echo loflags=$(cat /sys/class/net/lo/flags)
echo done
exec sleep 1000`

// TestPodNamespaces checks that two containers of one pod share the pod's
// IPC, UTS and network namespaces (loopback only, up) but not their PID
// namespaces, and see the pod's hostname. Both run at once: namespace inode
// numbers are reused once a namespace is gone.
func TestPodNamespaces(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "nspod")
	podID := d.RunPod(t, pod)
	var got []map[string]string
	for _, name := range []string{"one", "two"} {
		cfg := framework.Sh(name, nsScript)
		d.RunContainer(t, podID, pod, cfg)
		var texts []string
		for _, l := range framework.WaitForLog(t, framework.LogPath(pod, cfg), "done", 20*time.Second) {
			texts = append(texts, l.Text)
		}
		got = append(got, keyValues(texts))
	}
	a, b := got[0], got[1]
	for _, ns := range []string{"ipc", "uts", "net"} {
		if a[ns] == "" || a[ns] != b[ns] {
			t.Errorf("%s namespace not shared: %q vs %q", ns, a[ns], b[ns])
		}
		host, _ := os.Readlink("/proc/self/ns/" + ns)
		if a[ns] == host {
			t.Errorf("%s namespace is the host's (%s)", ns, host)
		}
	}
	if a["pid"] == "" || a["pid"] == b["pid"] {
		t.Errorf("pid namespaces should differ: %q vs %q", a["pid"], b["pid"])
	}
	if a["hostname"] != "nspod" || b["hostname"] != "nspod" {
		t.Errorf("hostnames %q %q, want nspod", a["hostname"], b["hostname"])
	}
	// The pod network (CNI) adds eth0 beside the loopback.
	if strings.TrimSpace(a["links"]) != "eth0 lo" {
		t.Errorf("pod network has links %q, want eth0 and lo", a["links"])
	}
	if flags, err := strconv.ParseUint(strings.TrimPrefix(a["loflags"], "0x"), 16, 32); err != nil || flags&1 == 0 {
		t.Errorf("lo flags %q: want IFF_UP", a["loflags"])
	}

	st := d.PodStatus(t, podID)
	if st.GetLinux().GetNamespaces().GetOptions().GetNetwork() != runtimeapi.NamespaceMode_POD {
		t.Errorf("pod status namespaces %v", st.GetLinux().GetNamespaces())
	}
	if st.CreatedAt == 0 || st.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("pod status created_at %d state %v", st.CreatedAt, st.State)
	}
}

func TestPodFiles(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "files")
	podID := d.RunPod(t, pod)
	cfg := framework.Sh("files", "cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; cat /etc/hostname")
	id := d.RunContainer(t, podID, pod, cfg)
	st := d.WaitForState(t, id, runtimeapi.ContainerState_CONTAINER_EXITED, 20*time.Second)
	texts := framework.LogTexts(t, framework.LogPath(pod, cfg))
	if st.ExitCode != 0 {
		t.Fatalf("exit %d: %q", st.ExitCode, texts)
	}
	parts := strings.Split(strings.Join(texts, "\n"), "\n---\n")
	if len(parts) != 3 {
		t.Fatalf("output %q", texts)
	}
	hosts, resolv, hostname := parts[0], parts[1], strings.TrimSpace(parts[2])
	if !strings.Contains(hosts, "127.0.0.1") || !strings.Contains(hosts, "localhost") {
		t.Errorf("/etc/hosts lacks localhost:\n%s", hosts)
	}
	lines := strings.Split(resolv, "\n")
	for _, s := range framework.DNSServers {
		if !slices.Contains(lines, "nameserver "+s) {
			t.Errorf("resolv.conf lacks nameserver %s:\n%s", s, resolv)
		}
	}
	if !slices.Contains(lines, "search "+strings.Join(framework.DNSSearches, " ")) {
		t.Errorf("resolv.conf lacks search %v:\n%s", framework.DNSSearches, resolv)
	}
	if !slices.Contains(lines, "options "+strings.Join(framework.DNSOptions, " ")) {
		t.Errorf("resolv.conf lacks options %v:\n%s", framework.DNSOptions, resolv)
	}
	if hostname != "files" {
		t.Errorf("/etc/hostname %q, want files", hostname)
	}
}

// TestPodSandboxStatusContainers checks what kubelet's Evented PLEG reads
// from PodSandboxStatus: every container of the pod (running and exited)
// in containers_statuses, and the time they were read in timestamp.
func TestPodSandboxStatusContainers(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "pleg")
	podID := d.RunPod(t, pod)
	status := func() *runtimeapi.PodSandboxStatusResponse {
		t.Helper()
		resp, err := d.Runtime.PodSandboxStatus(framework.Ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: podID})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	before := time.Now().UnixNano()
	if resp := status(); len(resp.ContainersStatuses) != 0 || resp.Timestamp < before || resp.Timestamp > time.Now().UnixNano() {
		t.Errorf("empty pod: %d statuses, timestamp %d not between %d and now", len(resp.ContainersStatuses), resp.Timestamp, before)
	}

	done := d.RunContainer(t, podID, pod, framework.Sh("done", "exit 2"))
	d.WaitForState(t, done, runtimeapi.ContainerState_CONTAINER_EXITED, 20*time.Second)
	running := d.RunContainer(t, podID, pod, framework.Sh("running", "exec sleep 1000"))
	other := d.PodConfig(t, "pleg-other")
	d.RunContainer(t, d.RunPod(t, other), other, framework.Sh("elsewhere", "exec sleep 1000"))

	before = time.Now().UnixNano()
	resp := status()
	if resp.Timestamp < before || resp.Timestamp > time.Now().UnixNano() {
		t.Errorf("timestamp %d not between %d and now", resp.Timestamp, before)
	}
	got := map[string]*runtimeapi.ContainerStatus{}
	for _, st := range resp.ContainersStatuses {
		got[st.Id] = st
	}
	if len(got) != 2 || got[done] == nil || got[running] == nil {
		t.Fatalf("containers_statuses %v, want exactly this pod's two containers", got)
	}
	if st := got[done]; st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 2 {
		t.Errorf("exited container: %v", st)
	}
	// Each status is the one ContainerStatus gives.
	if st := got[running]; st.State != runtimeapi.ContainerState_CONTAINER_RUNNING || st.StartedAt != d.ContainerStatus(t, running).StartedAt {
		t.Errorf("running container: %v", st)
	}
}
