package cri

import (
	"context"
	"slices"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/container"
	"github.com/berth-project/berth/internal/sandbox"
	"github.com/berth-project/berth/internal/stats"
)

// critestMetrics is critest v1.37's expectedMetricDescriptorNames minus its
// unimplementedMetricDescriptors (pkg/validate/pod.go): the names a runtime
// must describe and, but for critestOptionalValues, give values for.
var critestMetrics = []string{
	"container_blkio_device_usage_total", "container_cpu_cfs_periods_total", "container_cpu_cfs_throttled_periods_total",
	"container_cpu_cfs_throttled_seconds_total", "container_cpu_system_seconds_total", "container_cpu_usage_seconds_total",
	"container_cpu_user_seconds_total", "container_file_descriptors", "container_fs_inodes_free", "container_fs_inodes_total",
	"container_fs_limit_bytes", "container_fs_reads_bytes_total", "container_fs_reads_total", "container_fs_usage_bytes",
	"container_fs_writes_bytes_total", "container_fs_writes_total", "container_last_seen", "container_memory_cache",
	"container_memory_failcnt", "container_memory_failures_total", "container_memory_kernel_usage", "container_memory_mapped_file",
	"container_memory_max_usage_bytes", "container_memory_rss", "container_memory_swap", "container_memory_usage_bytes",
	"container_memory_working_set_bytes", "container_network_receive_bytes_total", "container_network_receive_errors_total",
	"container_network_receive_packets_dropped_total", "container_network_receive_packets_total",
	"container_network_transmit_bytes_total", "container_network_transmit_errors_total",
	"container_network_transmit_packets_dropped_total", "container_network_transmit_packets_total", "container_oom_events_total",
	"container_processes", "container_sockets", "container_spec_cpu_period", "container_spec_cpu_shares",
	"container_spec_memory_limit_bytes", "container_spec_memory_swap_limit_bytes", "container_start_time_seconds",
	"container_threads", "container_threads_max",
}

// Block I/O needs accounting the test host may lack; critest accepts no values.
var critestOptionalValues = []string{
	"container_blkio_device_usage_total", "container_fs_reads_bytes_total", "container_fs_reads_total",
	"container_fs_writes_bytes_total", "container_fs_writes_total",
}

func TestListMetricDescriptors(t *testing.T) {
	resp, err := (&Server{}).ListMetricDescriptors(context.Background(), &runtimeapi.ListMetricDescriptorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, d := range resp.Descriptors {
		if got[d.Name] {
			t.Errorf("%s described twice", d.Name)
		}
		got[d.Name] = true
		if d.Help == "" || len(d.LabelKeys) < 3 || !slices.Equal(d.LabelKeys[:3], baseLabels) {
			t.Errorf("%s: help %q label keys %v", d.Name, d.Help, d.LabelKeys)
		}
	}
	for _, name := range critestMetrics {
		if !got[name] {
			t.Errorf("%s not described", name)
		}
	}
}

// A running pod with a running and an exited container gets a value for
// every described metric, each with as many label values as its descriptor
// has keys (what critest checks), and the exited container none.
func TestPodSandboxMetrics(t *testing.T) {
	nanos := func(v uint64) *uint64 { return &v }
	usage := stats.Usage{
		At:        time.Now(),
		CPU:       &stats.CPU{UsageNanos: 3e9},
		Memory:    &stats.Memory{Usage: 100, WorkingSet: 90, RSS: 80, OOMKills: 1},
		Processes: nanos(2),
	}
	started := time.Unix(1700000000, 0)
	ps := &stats.PodStats{
		Pod:     &sandbox.Sandbox{ID: "p1"},
		Usage:   usage,
		Network: &stats.Network{Interfaces: []stats.Interface{{Name: "eth0", RxBytes: 10, RxPackets: 1}}},
		Containers: []*stats.ContainerStats{
			{
				Container:     &container.Container{ID: "c1", Name: "app", Image: "busybox", StartedAt: started.UnixNano()},
				Usage:         usage,
				WritableLayer: &stats.Disk{At: started, Bytes: 4096, Inodes: 3},
				Filesystem:    &stats.Filesystem{CapacityBytes: 1 << 30, Inodes: 1000, InodesFree: 900},
				Detail: &stats.Detail{
					CPUUserNanos: 2e9, CPUPeriod: 100000, CPUQuota: 20000, CPUShares: 1024, MemLimit: 64 << 20,
					IO:          []stats.DeviceIO{{Major: 8, Minor: 0, ReadBytes: 4096, Reads: 1}},
					ProcsListed: true, Processes: 1, FDs: 3, Sockets: 1,
				},
			},
			{Container: &container.Container{ID: "c2", Name: "done"}}, // exited: no usage
		},
	}
	pm := podSandboxMetrics(ps, time.Unix(1800000000, 0))
	if pm.PodSandboxId != "p1" || len(pm.ContainerMetrics) != 1 || pm.ContainerMetrics[0].ContainerId != "c1" {
		t.Fatalf("pod %s with container metrics %v, want c1's only", pm.PodSandboxId, pm.ContainerMetrics)
	}
	keys := map[string]int{}
	for _, d := range allMetrics {
		keys[d.Name] = len(d.LabelKeys)
	}
	values := map[string]map[string]uint64{} // name -> first label values joined -> value
	check := func(who string, ms []*runtimeapi.Metric) {
		for _, m := range ms {
			n, ok := keys[m.Name]
			if !ok {
				t.Errorf("%s: %s is not described", who, m.Name)
			}
			if len(m.LabelValues) != n {
				t.Errorf("%s: %s has label values %q for %d keys", who, m.Name, m.LabelValues, n)
			}
			if values[m.Name] == nil {
				values[m.Name] = map[string]uint64{}
			}
			values[m.Name][who] = m.GetValue().GetValue()
		}
	}
	check("pod", pm.Metrics)
	check("c1", pm.ContainerMetrics[0].Metrics)
	for _, d := range allMetrics {
		if values[d.Name] == nil && !slices.Contains(critestOptionalValues, d.Name) {
			t.Errorf("%s has no value", d.Name)
		}
	}
	for name, want := range map[string]uint64{
		"container_cpu_usage_seconds_total":       3,
		"container_cpu_user_seconds_total":        2,
		"container_spec_cpu_quota":                20000,
		"container_spec_memory_limit_bytes":       64 << 20,
		"container_fs_usage_bytes":                4096,
		"container_fs_inodes_free":                900,
		"container_file_descriptors":              3,
		"container_threads":                       2,
		"container_start_time_seconds":            1700000000,
		"container_last_seen":                     1800000000,
		"container_fs_reads_bytes_total":          4096,
		"container_network_receive_packets_total": 1,
	} {
		got, ok := values[name]["c1"]
		if name == "container_network_receive_packets_total" {
			got, ok = values[name]["pod"]
		}
		if !ok || got != want {
			t.Errorf("%s = %d (present %v), want %d", name, got, ok, want)
		}
	}
}
