package framework

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const sigterm = syscall.SIGTERM

func cloneProto[T proto.Message](m T) T { return proto.Clone(m).(T) }

// check compares what berthd lists with the host, right after a restart,
// while no worker calls it. Each finding is a violation.
func (c *churn) check(t testing.TB) {
	t.Helper()
	d := c.d
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pr, err := d.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		c.violation("check-list", fmt.Sprintf("ListPodSandbox after restart: %v", err))
		return
	}
	cr, err := d.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		c.violation("check-list", fmt.Sprintf("ListContainers after restart: %v", err))
		return
	}
	pods := map[string]*runtimeapi.PodSandbox{}
	byMeta := map[string][]string{}
	for _, p := range pr.Items {
		pods[p.Id] = p
		k := podKey(p.Metadata)
		byMeta[k] = append(byMeta[k], p.Id)
	}
	for k, ids := range byMeta {
		if len(ids) > 1 {
			c.violation("dup-pod "+k, fmt.Sprintf("%d pods listed with metadata %s: %v", len(ids), k, ids))
		}
	}
	ctrs := map[string]*runtimeapi.Container{}
	ctrMeta := map[string][]string{}
	for _, ct := range cr.Containers {
		ctrs[ct.Id] = ct
		k := fmt.Sprintf("%s/%s/%d", ct.PodSandboxId, ct.Metadata.GetName(), ct.Metadata.GetAttempt())
		ctrMeta[k] = append(ctrMeta[k], ct.Id)
		if pods[ct.PodSandboxId] == nil {
			c.violation("ctr-no-pod "+ct.Id, fmt.Sprintf("container %s is listed but its pod %s is not", ct.Id, ct.PodSandboxId))
		}
	}
	for k, ids := range ctrMeta {
		if len(ids) > 1 {
			c.violation("dup-ctr "+k, fmt.Sprintf("%d containers listed as %s: %v", len(ids), k, ids))
		}
	}

	mounts := map[string]bool{}
	for _, m := range d.mounts() {
		mounts[m] = true
	}
	for id, p := range pods {
		dir := filepath.Join(d.StateDir, "sandboxes", id)
		ready := p.State == runtimeapi.PodSandboxState_SANDBOX_READY
		for _, f := range []string{"netns", "ipcns", "utsns", "shm"} {
			switch m := mounts[filepath.Join(dir, f)]; {
			case ready && !m:
				c.violation("pin "+id+f, fmt.Sprintf("READY pod %s has no %s mounted", id, f))
			case !ready && m:
				c.violation("stopped-pin "+id+f, fmt.Sprintf("NOT_READY pod %s still has %s mounted", id, f))
			}
		}
	}
	for id, ct := range ctrs {
		switch ct.State {
		case runtimeapi.ContainerState_CONTAINER_RUNNING:
			resp, err := d.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
			if err != nil {
				c.violation("status "+id, fmt.Sprintf("ContainerStatus %s: %v", id, err))
				continue
			}
			var info struct {
				Pid int `json:"pid"`
			}
			_ = json.Unmarshal([]byte(resp.Info["info"]), &info)
			if !procAlive(info.Pid) {
				c.violation("dead "+id, fmt.Sprintf("RUNNING container %s: its process %d is gone", id, info.Pid))
			}
			fallthrough
		case runtimeapi.ContainerState_CONTAINER_CREATED:
			if !conmonAlive(filepath.Join(d.StateDir, "containers", id)) {
				c.violation("no-conmon "+id, fmt.Sprintf("%v container %s has no live conmon", ct.State, id))
			}
		}
	}
	objects := d.hostObjects()
	// Read after what they explain: a network being prepared has its dir
	// before its pin, lease and veth. It is no pod's yet
	// (network.prepare_ahead).
	prepared := d.preparedIDs()
	known := func(id string) bool { return pods[id] != nil || ctrs[id] != nil || prepared[id] }
	for _, f := range objects {
		if !known(f.id) {
			c.violation("host "+f.what+" "+f.id, fmt.Sprintf("%s for %s, which is neither a listed pod nor container", f.what, f.id))
		}
	}
	// Network: leases and cached ADD results belong to READY pods only,
	// and the bridge has no more veths than there are READY pods.
	ready := 0
	for _, p := range pods {
		if p.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			ready++
		}
	}
	leaseOwners := d.leaseOwners()
	ports, _ := os.ReadDir(filepath.Join("/sys/class/net", d.Bridge, "brif"))
	for id := range d.preparedIDs() {
		prepared[id] = true
	}
	for _, l := range leaseOwners {
		if prepared[l] {
			continue
		}
		if p := pods[l]; p == nil || p.State != runtimeapi.PodSandboxState_SANDBOX_READY {
			c.violation("lease "+l, fmt.Sprintf("IP lease held for %s, which is not a listed READY pod", l))
		}
	}
	for _, id := range d.cniCacheOwners() {
		if p := pods[id]; p == nil || p.State != runtimeapi.PodSandboxState_SANDBOX_READY {
			c.violation("cni-cache "+id, fmt.Sprintf("cached CNI result for %s, which is not a listed READY pod", id))
		}
	}
	if len(ports) > ready+len(prepared) {
		c.violation(fmt.Sprintf("veths %d>%d", len(ports), ready+len(prepared)), fmt.Sprintf("%d veths on bridge %s for %d READY pods and %d prepared networks", len(ports), d.Bridge, ready, len(prepared)))
	}
	// The image store: no image half present, nothing unreferenced.
	for k, msg := range d.imageStoreProblems(ctx) {
		c.violation("image "+k, msg)
	}
}

type hostObject struct{ what, id string }

// hostObjects lists what berthd's pods and containers hold on the host,
// each with the id it belongs to.
func (d *Daemon) hostObjects() []hostObject {
	var out []hostObject
	ids, err := d.runcList()
	if err != nil {
		out = append(out, hostObject{"runc list failed: " + err.Error(), "?"})
	}
	for _, id := range ids {
		out = append(out, hostObject{"runc state", id})
	}
	self := d.PID()
	for _, p := range d.processes() {
		if p.pid == self {
			continue
		}
		args := strings.Fields(p.cmdline)
		id := "?"
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-c" {
				id = args[i+1]
			}
		}
		if p.podDir != "" {
			// A pause process: its pod's, or a prepared pod's (which a pod
			// that took it has as its id too).
			id = filepath.Base(p.podDir)
		}
		what := "process " + filepath.Base(args[0])
		if !IsMonitor(args[0]) {
			what += " (" + p.cmdline + ")"
		}
		out = append(out, hostObject{what, id})
	}
	for _, m := range d.mounts() {
		if id := idInPath(d, m); id != "" {
			out = append(out, hostObject{"mount " + strings.TrimPrefix(m, d.Dir), id})
		} else {
			out = append(out, hostObject{"mount " + m, "?"})
		}
	}
	for _, top := range d.cgroupDirs() {
		pods, _ := os.ReadDir(top)
		for _, p := range pods {
			if !p.IsDir() {
				continue
			}
			cs, _ := os.ReadDir(filepath.Join(top, p.Name()))
			for _, c := range cs {
				if c.IsDir() {
					out = append(out, hostObject{"cgroup below " + p.Name(), c.Name()})
				}
			}
		}
	}
	for _, dir := range []string{
		filepath.Join(d.StateDir, "sandboxes"), filepath.Join(d.StateDir, "containers"),
		filepath.Join(d.Root, "containers"), filepath.Join(d.StateDir, "exits"),
	} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			out = append(out, hostObject{"dir " + strings.TrimPrefix(dir, d.Dir), e.Name()})
		}
	}
	return out
}

// idInPath returns the object id a path under the daemon's dirs belongs to.
func idInPath(d *Daemon, p string) string {
	for _, base := range []string{filepath.Join(d.StateDir, "sandboxes"), filepath.Join(d.StateDir, "containers"), filepath.Join(d.Root, "containers"), filepath.Join(d.StateDir, "prepared")} {
		if rest, ok := strings.CutPrefix(p, base+"/"); ok {
			id, _, _ := strings.Cut(rest, "/")
			return id
		}
	}
	return ""
}

// preparedIDs returns the ids of the pod networks berthd holds prepared
// for its next pods (network.prepare_ahead).
func (d *Daemon) preparedIDs() map[string]bool {
	entries, _ := os.ReadDir(filepath.Join(d.StateDir, "prepared"))
	out := map[string]bool{}
	for _, e := range entries {
		out[e.Name()] = true
	}
	return out
}

// leaseOwners returns the pod ids host-local holds leases for.
func (d *Daemon) leaseOwners() []string {
	var out []string
	for _, ip := range Leases(d.LeaseDir()) {
		data, err := os.ReadFile(filepath.Join(d.LeaseDir(), ip))
		if err != nil {
			continue
		}
		id, _, _ := strings.Cut(string(data), "\n")
		out = append(out, strings.TrimSpace(id))
	}
	return out
}

// cniCacheOwners returns the pod ids libcni has cached ADD results for
// (results/<network>-<id>-<ifname>).
func (d *Daemon) cniCacheOwners() []string {
	entries, _ := os.ReadDir(filepath.Join(d.StateDir, "cni", "cache", "results"))
	var out []string
	for _, e := range entries {
		parts := strings.Split(e.Name(), "-")
		for _, p := range parts {
			if len(p) == 64 {
				out = append(out, p)
			}
		}
	}
	return out
}

// dirLeaks reports what is left in the daemon's per-object dirs once every
// pod is removed.
func (d *Daemon) dirLeaks() []string {
	var leaks []string
	for _, f := range d.hostObjects() {
		if strings.HasPrefix(f.what, "dir ") {
			leaks = append(leaks, fmt.Sprintf("%s left: %s", f.what, f.id))
		}
	}
	for _, id := range d.cniCacheOwners() {
		leaks = append(leaks, "cached CNI result left for "+id)
	}
	return leaks
}

// iptablesLines returns the iptables-save lines that name the daemon's
// bridge or subnet (none when iptables is not installed).
func (d *Daemon) iptablesLines() []string {
	out, err := exec.Command("iptables-save").Output()
	if err != nil {
		return nil
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if l := sc.Text(); strings.Contains(l, d.Bridge) || strings.Contains(l, d.Subnet) {
			lines = append(lines, l)
		}
	}
	return lines
}

// procAlive says pid exists and is not a zombie.
func procAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(st, ')')
	return i > 0 && i+2 < len(st) && st[i+2] != 'Z'
}

// IsMonitor says whether a process's argv[0] is a container monitor:
// berth-monitor (berthd's default) or conmon.
func IsMonitor(arg0 string) bool {
	base := filepath.Base(arg0)
	return base == "berth-monitor" || base == "conmon"
}

// conmonAlive says the monitor whose pid file is in dir runs.
func conmonAlive(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "conmon.pid"))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !procAlive(pid) {
		return false
	}
	cmd, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	arg0, _, _ := bytes.Cut(cmd, []byte{0})
	return err == nil && IsMonitor(string(arg0))
}
