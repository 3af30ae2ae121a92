package e2e

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/test/e2e/framework"
)

const mib = 1 << 20

// pollStats calls ContainerStats until ok accepts the result.
func pollStats(t *testing.T, d *framework.Daemon, id string, what string, ok func(*runtimeapi.ContainerStats) bool) *runtimeapi.ContainerStats {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := d.Runtime.ContainerStats(framework.Ctx(t), &runtimeapi.ContainerStatsRequest{ContainerId: id})
		if err != nil {
			t.Fatalf("ContainerStats(%s): %v", id, err)
		}
		if ok(resp.Stats) {
			return resp.Stats
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s: %s never held; last stats %v", id, what, resp.Stats)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func podStats(t *testing.T, d *framework.Daemon, id string) *runtimeapi.PodSandboxStats {
	t.Helper()
	resp, err := d.Runtime.PodSandboxStats(framework.Ctx(t), &runtimeapi.PodSandboxStatsRequest{PodSandboxId: id})
	if err != nil {
		t.Fatalf("PodSandboxStats(%s): %v", id, err)
	}
	return resp.Stats
}

func loRx(t *testing.T, s *runtimeapi.PodSandboxStats) uint64 {
	t.Helper()
	n := s.GetLinux().GetNetwork()
	for _, i := range append([]*runtimeapi.NetworkInterfaceUsage{n.GetDefaultInterface()}, n.GetInterfaces()...) {
		if i.GetName() == "lo" {
			return i.GetRxBytes().GetValue()
		}
	}
	t.Fatalf("no lo interface in pod network stats %v", n)
	return 0
}

// TestStats: memory a container really holds shows in its working set, a
// busy loop shows as about one core, the writable layer's usage appears,
// and the pod sums its containers and counts its loopback traffic.
func TestStats(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "stats")
	podID := d.RunPod(t, pod)

	// dd holds its 64 MiB block while blocked writing into a pipe nobody
	// reads: anonymous memory charged to the container's cgroup.
	hog := d.RunContainer(t, podID, pod, framework.Sh("hog",
		"head -c 1048576 /dev/urandom > /layerfile; dd if=/dev/zero bs=64M count=1 | sleep 3600"))
	busy := d.RunContainer(t, podID, pod, framework.Sh("busy", "while :; do :; done"))

	// Both polled: dd's buffer fills as it reads, and the working set
	// (which also counts the layer file's page cache) can pass 64 MiB a
	// moment before the anonymous memory does.
	st := pollStats(t, d, hog, "working set and rss >= 64 MiB", func(s *runtimeapi.ContainerStats) bool {
		return s.GetMemory().GetWorkingSetBytes().GetValue() >= 64*mib && s.GetMemory().GetRssBytes().GetValue() >= 64*mib
	})
	if st.Memory.GetPageFaults().GetValue() == 0 || st.Memory.Timestamp == 0 {
		t.Errorf("hog memory stats incomplete: %v", st.Memory)
	}
	if st.Attributes.GetId() != hog || st.Attributes.GetMetadata().GetName() != "hog" {
		t.Errorf("attributes %v", st.Attributes)
	}
	st = pollStats(t, d, hog, "writable layer >= 1 MiB", func(s *runtimeapi.ContainerStats) bool {
		return s.GetWritableLayer().GetUsedBytes().GetValue() >= mib
	})
	if st.WritableLayer.GetInodesUsed().GetValue() < 2 || st.WritableLayer.GetFsId().GetMountpoint() == "" {
		t.Errorf("writable layer %v", st.WritableLayer)
	}

	// Two samples a couple of seconds apart: the rate is over that window.
	first := pollStats(t, d, busy, "cpu usage > 0", func(s *runtimeapi.ContainerStats) bool {
		return s.GetCpu().GetUsageCoreNanoSeconds().GetValue() > 0
	})
	time.Sleep(2 * time.Second)
	st = pollStats(t, d, busy, "usage_nano_cores set", func(s *runtimeapi.ContainerStats) bool {
		return s.GetCpu().GetUsageNanoCores() != nil
	})
	// The loop's share of the host's two cores depends on what else runs,
	// so the rate is checked against the loop's own counter over (nearly)
	// the same window, not against one core: berthd's window starts at the
	// sample it kept, at or a poll before first.
	nc := float64(st.Cpu.UsageNanoCores.Value)
	own := float64(st.Cpu.UsageCoreNanoSeconds.Value-first.Cpu.UsageCoreNanoSeconds.Value) /
		(float64(st.Cpu.Timestamp-first.Cpu.Timestamp) / 1e9)
	if nc < 0.1e9 || nc > 1.15e9 || math.Abs(nc-own) > 0.25e9 {
		t.Errorf("busy loop usage_nano_cores %.0f, want at most one core and near its own counter's %.0f over the window", nc, own)
	}

	// Pod: its own cgroup (kubelet-style parent), loopback traffic counted.
	before := podStats(t, d, podID)
	rx0 := loRx(t, before)
	web := d.RunContainer(t, podID, pod, framework.Sh("web",
		"mkdir -p /www && head -c 100000 /dev/zero > /www/blob && httpd -p 127.0.0.1:8080 -h /www && "+
			"for i in 1 2 3 4 5; do wget -q -O /dev/null http://127.0.0.1:8080/blob; done; echo fetched; sleep 3600"))
	framework.WaitForLog(t, framework.LogPath(pod, framework.Sh("web", "")), "fetched", 20*time.Second)
	after := podStats(t, d, podID)
	if rx := loRx(t, after); rx < rx0+500000 {
		t.Errorf("pod lo rx_bytes %d -> %d after fetching 500 kB over loopback", rx0, rx)
	}
	lin := after.GetLinux()
	if lin.GetMemory().GetWorkingSetBytes().GetValue() < 64*mib {
		t.Errorf("pod working set %d, want >= 64 MiB", lin.GetMemory().GetWorkingSetBytes().GetValue())
	}
	if lin.GetCpu().GetUsageCoreNanoSeconds().GetValue() < st.Cpu.UsageCoreNanoSeconds.Value {
		t.Errorf("pod cpu %v below its busy container's %v", lin.GetCpu(), st.Cpu)
	}
	if n := lin.GetProcess().GetProcessCount().GetValue(); n < 4 {
		t.Errorf("pod process count %d, want >= 4 (dd, sleep, sh, httpd...)", n)
	}
	if len(lin.GetContainers()) != 3 {
		t.Errorf("pod stats list %d containers, want 3", len(lin.GetContainers()))
	}
	if after.GetAttributes().GetId() != podID || after.GetAttributes().GetMetadata().GetName() != "stats" {
		t.Errorf("pod attributes %v", after.GetAttributes())
	}

	// Lists, filters, streams.
	list, err := d.Runtime.ListContainerStats(framework.Ctx(t), &runtimeapi.ListContainerStatsRequest{
		Filter: &runtimeapi.ContainerStatsFilter{PodSandboxId: podID}})
	if err != nil || len(list.Stats) != 3 {
		t.Fatalf("ListContainerStats(pod): %d stats, %v", len(list.GetStats()), err)
	}
	list, err = d.Runtime.ListContainerStats(framework.Ctx(t), &runtimeapi.ListContainerStatsRequest{
		Filter: &runtimeapi.ContainerStatsFilter{Id: web, LabelSelector: map[string]string{"io.kubernetes.container.name": "web"}}})
	if err != nil || len(list.Stats) != 1 || list.Stats[0].Attributes.Id != web {
		t.Errorf("ListContainerStats(web): %v, %v", list.GetStats(), err)
	}
	stream, err := d.Runtime.StreamContainerStats(framework.Ctx(t), &runtimeapi.StreamContainerStatsRequest{
		Filter: &runtimeapi.ContainerStatsFilter{PodSandboxId: podID}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("StreamContainerStats: %v", err)
		}
		n += len(msg.ContainerStats)
	}
	if n != 3 {
		t.Errorf("StreamContainerStats sent %d stats, want 3", n)
	}
	plist, err := d.Runtime.ListPodSandboxStats(framework.Ctx(t), &runtimeapi.ListPodSandboxStatsRequest{
		Filter: &runtimeapi.PodSandboxStatsFilter{Id: podID}})
	if err != nil || len(plist.Stats) != 1 {
		t.Errorf("ListPodSandboxStats(pod): %v, %v", plist.GetStats(), err)
	}
	pstream, err := d.Runtime.StreamPodSandboxStats(framework.Ctx(t), &runtimeapi.StreamPodSandboxStatsRequest{
		Filter: &runtimeapi.PodSandboxStatsFilter{Id: podID}})
	if err != nil {
		t.Fatal(err)
	}
	if msg, err := pstream.Recv(); err != nil || len(msg.PodSandboxStats) != 1 {
		t.Errorf("StreamPodSandboxStats: %v, %v", msg, err)
	}

	// Kubelet's metrics from the runtime.
	descs, err := d.Runtime.ListMetricDescriptors(framework.Ctx(t), &runtimeapi.ListMetricDescriptorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]int{}
	for _, m := range descs.Descriptors {
		keys[m.Name] = len(m.LabelKeys)
	}
	for _, name := range []string{"container_cpu_usage_seconds_total", "container_memory_working_set_bytes",
		"container_memory_rss", "container_network_receive_bytes_total", "container_network_transmit_bytes_total"} {
		if keys[name] == 0 {
			t.Errorf("no descriptor for %s", name)
		}
	}
	pm, err := d.Runtime.ListPodSandboxMetrics(framework.Ctx(t), &runtimeapi.ListPodSandboxMetricsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, p := range pm.PodMetrics {
		if p.PodSandboxId != podID {
			continue
		}
		all := p.Metrics
		for _, c := range p.ContainerMetrics {
			all = append(all, c.Metrics...)
			for _, m := range c.Metrics {
				if c.ContainerId == hog && m.Name == "container_memory_working_set_bytes" && m.Value.Value >= 64*mib {
					found = true
				}
			}
		}
		for _, m := range all {
			if len(m.LabelValues) != keys[m.Name] {
				t.Errorf("metric %s has %d label values, its descriptor %d keys", m.Name, len(m.LabelValues), keys[m.Name])
			}
		}
	}
	if !found {
		t.Errorf("ListPodSandboxMetrics: no working set >= 64 MiB for the hog in %v", pm.PodMetrics)
	}

	// Bad input.
	_, err = d.Runtime.ContainerStats(framework.Ctx(t), &runtimeapi.ContainerStatsRequest{ContainerId: "nosuchcontainer"})
	wantCode(t, "ContainerStats(unknown)", err, codes.NotFound)
	_, err = d.Runtime.PodSandboxStats(framework.Ctx(t), &runtimeapi.PodSandboxStatsRequest{PodSandboxId: "nosuchpod"})
	wantCode(t, "PodSandboxStats(unknown)", err, codes.NotFound)
	list, err = d.Runtime.ListContainerStats(framework.Ctx(t), &runtimeapi.ListContainerStatsRequest{
		Filter: &runtimeapi.ContainerStatsFilter{Id: "nosuchcontainer"}})
	if err != nil || len(list.Stats) != 0 {
		t.Errorf("ListContainerStats(unknown id): %v, %v; want an empty list", list.GetStats(), err)
	}
	plist, err = d.Runtime.ListPodSandboxStats(framework.Ctx(t), &runtimeapi.ListPodSandboxStatsRequest{
		Filter: &runtimeapi.PodSandboxStatsFilter{Id: "nosuchpod"}})
	if err != nil || len(plist.Stats) != 0 {
		t.Errorf("ListPodSandboxStats(unknown id): %v, %v; want an empty list", plist.GetStats(), err)
	}
}

// eventClient collects GetContainerEvents responses in the background.
type eventClient struct {
	ch     chan *runtimeapi.ContainerEventResponse
	cancel context.CancelFunc
}

func subscribe(t *testing.T, d *framework.Daemon) *eventClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := d.Runtime.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		cancel()
		t.Fatalf("GetContainerEvents: %v", err)
	}
	c := &eventClient{ch: make(chan *runtimeapi.ContainerEventResponse, 100), cancel: cancel}
	go func() {
		defer close(c.ch)
		for {
			ev, err := stream.Recv()
			if err != nil {
				return
			}
			c.ch <- ev
		}
	}()
	t.Cleanup(cancel)
	return c
}

// next returns the next event about container id, skipping others.
func (c *eventClient) next(t *testing.T, id string) *runtimeapi.ContainerEventResponse {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-c.ch:
			if !ok {
				t.Fatalf("event stream ended while waiting for an event of %s", id)
			}
			if ev.ContainerId == id {
				return ev
			}
		case <-timeout:
			t.Fatalf("no event for container %s within 20s", id)
		}
	}
}

// expect checks the next event of id: its type, and the container's state
// in the statuses it carries (nil: the container must not be listed).
func (c *eventClient) expect(t *testing.T, id string, typ runtimeapi.ContainerEventType, state *runtimeapi.ContainerState) *runtimeapi.ContainerStatus {
	t.Helper()
	ev := c.next(t, id)
	if ev.ContainerEventType != typ {
		t.Fatalf("container %s: event %v, want %v", id, ev.ContainerEventType, typ)
	}
	if ev.CreatedAt == 0 || ev.PodSandboxStatus.GetId() == "" {
		t.Errorf("event %v lacks a time or the pod status", ev)
	}
	var st *runtimeapi.ContainerStatus
	for _, s := range ev.ContainersStatuses {
		if s.Id == id {
			st = s
		}
	}
	switch {
	case state == nil && st != nil:
		t.Errorf("%v event still lists container %s", typ, id)
	case state != nil && st == nil:
		t.Errorf("%v event lacks container %s's status", typ, id)
	case state != nil && st.State != *state:
		t.Errorf("%v event shows container %s %v, want %v", typ, id, st.State, *state)
	}
	return st
}

func statePtr(s runtimeapi.ContainerState) *runtimeapi.ContainerState { return &s }

// TestContainerEventsAndMetrics follows containers over their whole lives
// with event streams, one of them across a berthd restart during which the
// container exits, then scrapes the Prometheus page.
func TestContainerEventsAndMetrics(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	d := framework.StartDaemon(t, framework.Options{Config: fmt.Sprintf("log_level = \"debug\"\n[metrics]\naddress = %q\n", addr)})

	pod := d.PodConfig(t, "events")
	podID := d.RunPod(t, pod)
	a := subscribe(t, d)

	// A whole life while connected.
	life := d.CreateContainer(t, podID, pod, framework.Sh("life", "sleep 1"))
	a.expect(t, life, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, statePtr(runtimeapi.ContainerState_CONTAINER_CREATED))
	d.StartContainer(t, life)
	a.expect(t, life, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT, statePtr(runtimeapi.ContainerState_CONTAINER_RUNNING))
	st := a.expect(t, life, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, statePtr(runtimeapi.ContainerState_CONTAINER_EXITED))
	if st.GetReason() != "Completed" {
		t.Errorf("stopped event reason %q, want Completed", st.GetReason())
	}
	if _, err := d.Runtime.RemoveContainer(framework.Ctx(t), &runtimeapi.RemoveContainerRequest{ContainerId: life}); err != nil {
		t.Fatal(err)
	}
	a.expect(t, life, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT, nil)

	// Across a restart: it exits while berthd is down.
	span := d.CreateContainer(t, podID, pod, framework.Sh("span", "sleep 3; exit 3"))
	d.StartContainer(t, span)
	a.expect(t, span, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, statePtr(runtimeapi.ContainerState_CONTAINER_CREATED))
	a.expect(t, span, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT, statePtr(runtimeapi.ContainerState_CONTAINER_RUNNING))
	d.Stop(t)
	if _, ok := <-a.ch; ok {
		t.Error("event stream got an event while berthd stopped")
	}
	time.Sleep(4 * time.Second)
	d.Restart(t)
	b := subscribe(t, d)
	st = b.expect(t, span, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, statePtr(runtimeapi.ContainerState_CONTAINER_EXITED))
	if st.GetExitCode() != 3 || st.GetReason() != "Error" {
		t.Errorf("replayed stop: exit %d reason %q, want 3 Error", st.GetExitCode(), st.GetReason())
	}
	if _, err := d.Runtime.RemoveContainer(framework.Ctx(t), &runtimeapi.RemoveContainerRequest{ContainerId: span}); err != nil {
		t.Fatal(err)
	}
	b.expect(t, span, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT, nil)

	// The metrics page after a few calls, one of them failing.
	d.Runtime.ContainerStatus(framework.Ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: "nosuchcontainer"})
	d.Runtime.ListContainers(framework.Ctx(t), &runtimeapi.ListContainersRequest{})
	d.RunContainer(t, podID, pod, framework.Sh("idle", "sleep 3600"))
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	for _, want := range []string{
		`berth_cri_request_duration_seconds_bucket{method="CreateContainer",le=`,
		`berth_cri_request_duration_seconds_count{method="StartContainer"} 1`,
		`berth_cri_request_duration_seconds_count{method="ListContainers"}`,
		`berth_cri_request_errors_total{code="NotFound",method="ContainerStatus"} 1`,
		`berth_pods{state="ready"} 1`,
		`berth_containers{state="running"} 1`,
		`berth_image_pull_bytes_total`,
		`berth_image_pull_duration_seconds_count`,
		`go_goroutines`,
		`go_memstats_heap_inuse_bytes`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("metrics page lacks %s", want)
		}
	}
	// Each call logged at debug with its ids.
	data, err := os.ReadFile(d.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "method=/runtime.v1.RuntimeService/StartContainer") ||
		!strings.Contains(string(data), "container="+span) {
		t.Errorf("berthd log lacks debug call lines with container ids")
	}
}

// TestOOMKilled: a container exceeding its memory limit is reported
// OOMKilled, in its status and in its stop event.
func TestOOMKilled(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "oom")
	podID := d.RunPod(t, pod)
	ev := subscribe(t, d)
	cfg := framework.ContainerConfig("oom", "dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1")
	cfg.Linux.Resources.MemoryLimitInBytes = 32 * mib
	id := d.RunContainer(t, podID, pod, cfg)
	st := d.WaitForState(t, id, runtimeapi.ContainerState_CONTAINER_EXITED, 20*time.Second)
	if st.Reason != "OOMKilled" || st.ExitCode != 137 {
		t.Errorf("status: reason %q exit %d, want OOMKilled 137", st.Reason, st.ExitCode)
	}
	ev.expect(t, id, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, statePtr(runtimeapi.ContainerState_CONTAINER_CREATED))
	ev.expect(t, id, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT, statePtr(runtimeapi.ContainerState_CONTAINER_RUNNING))
	if st := ev.expect(t, id, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, statePtr(runtimeapi.ContainerState_CONTAINER_EXITED)); st.GetReason() != "OOMKilled" {
		t.Errorf("stop event reason %q, want OOMKilled", st.GetReason())
	}
}

// TestPodSandboxMetricsCadvisor does what critest's "runtime should support
// listing pod sandbox metrics" does: a container with CPU and memory
// limits writes a few files, and the very first ListPodSandboxMetrics must
// give a value for every described metric (block I/O aside: the host may
// not account it), each with as many label values as its descriptor has
// keys, with the limits the container was given.
func TestPodSandboxMetricsCadvisor(t *testing.T) {
	d := framework.Shared(t)
	pod := d.PodConfig(t, "metrics")
	podID := d.RunPod(t, pod)
	cfg := framework.Sh("limited", "exec sleep 3600")
	cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{
		CpuPeriod: 100000, CpuQuota: 20000, CpuShares: 1024,
		MemoryLimitInBytes: 64 * mib, MemorySwapLimitInBytes: 64 * mib,
	}
	before := time.Now()
	id := d.RunContainer(t, podID, pod, cfg)
	if _, err := d.Runtime.ExecSync(framework.Ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Timeout: 10,
		Cmd: []string{"/bin/sh", "-c", "mkdir -p /var/lib/mydisktest && for i in $(seq 1 10); do echo hi >> /var/lib/mydisktest/f$i; done; sync"}}); err != nil {
		t.Fatal(err)
	}

	descs, err := d.Runtime.ListMetricDescriptors(framework.Ctx(t), &runtimeapi.ListMetricDescriptorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	pm, err := d.Runtime.ListPodSandboxMetrics(framework.Ctx(t), &runtimeapi.ListPodSandboxMetricsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first ListPodSandboxMetrics took %v (waits for the new writable layer's first walk)", time.Since(start))
	start = time.Now()
	if _, err := d.Runtime.ListPodSandboxMetrics(framework.Ctx(t), &runtimeapi.ListPodSandboxMetricsRequest{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("second ListPodSandboxMetrics took %v", time.Since(start))
	var metrics []*runtimeapi.Metric
	for _, p := range pm.PodMetrics {
		if p.PodSandboxId != podID {
			continue
		}
		metrics = append(metrics, p.Metrics...)
		for _, c := range p.ContainerMetrics {
			if c.ContainerId != id {
				t.Errorf("metrics for container %s, not in this pod", c.ContainerId)
			}
			metrics = append(metrics, c.Metrics...)
		}
	}
	first := map[string]*runtimeapi.Metric{}
	for _, m := range metrics {
		if first[m.Name] == nil {
			first[m.Name] = m
		}
	}
	for _, desc := range descs.Descriptors {
		m := first[desc.Name]
		if m == nil {
			if !strings.Contains(desc.Name, "blkio") && !strings.HasPrefix(desc.Name, "container_fs_reads") && !strings.HasPrefix(desc.Name, "container_fs_writes") {
				t.Errorf("%s: described but no value", desc.Name)
			}
			continue
		}
		if len(m.LabelValues) != len(desc.LabelKeys) {
			t.Errorf("%s: label values %q for keys %q", desc.Name, m.LabelValues, desc.LabelKeys)
		}
	}
	value := func(name string) uint64 {
		for _, m := range metrics {
			if m.Name == name && len(m.LabelValues) > 0 && m.LabelValues[0] == id {
				return m.Value.GetValue()
			}
		}
		t.Errorf("no %s for the container", name)
		return 0
	}
	for name, want := range map[string]uint64{
		"container_spec_cpu_period":         100000,
		"container_spec_cpu_quota":          20000,
		"container_spec_cpu_shares":         1024,
		"container_spec_memory_limit_bytes": 64 * mib,
	} {
		if got := value(name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	if v := value("container_fs_usage_bytes"); v < 10*512 {
		t.Errorf("container_fs_usage_bytes %d after writing 10 files", v)
	}
	for _, name := range []string{"container_processes", "container_threads", "container_file_descriptors", "container_fs_inodes_free", "container_fs_limit_bytes"} {
		if v := value(name); v == 0 {
			t.Errorf("%s = 0", name)
		}
	}
	if v := int64(value("container_start_time_seconds")); v < before.Unix()-1 || v > time.Now().Unix() {
		t.Errorf("container_start_time_seconds %d, want between %d and now", v, before.Unix())
	}
}
