package cri

import (
	"context"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/stats"
)

// Kubelet (with PodAndContainerStatsFromCRI) serves these as its
// /metrics/cadvisor page, so the names are cAdvisor's. Label keys follow
// CRI-O: id, name, image; cpu "total" on CPU time, interface on network.
var (
	baseLabels    = []string{"id", "name", "image"}
	cpuLabels     = []string{"id", "name", "image", "cpu"}
	networkLabels = []string{"id", "name", "image", "interface"}
)

type metricDesc struct {
	*runtimeapi.MetricDescriptor
	typ runtimeapi.MetricType
}

func desc(name, help string, labels []string, typ runtimeapi.MetricType) metricDesc {
	return metricDesc{&runtimeapi.MetricDescriptor{Name: name, Help: help, LabelKeys: labels}, typ}
}

var (
	mCPU        = desc("container_cpu_usage_seconds_total", "Cumulative CPU time consumed in seconds (whole seconds: CRI metric values are integers).", cpuLabels, runtimeapi.MetricType_COUNTER)
	mMemUsage   = desc("container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed.", baseLabels, runtimeapi.MetricType_GAUGE)
	mWorkingSet = desc("container_memory_working_set_bytes", "Current working set in bytes.", baseLabels, runtimeapi.MetricType_GAUGE)
	mRSS        = desc("container_memory_rss", "Size of RSS in bytes.", baseLabels, runtimeapi.MetricType_GAUGE)
	mOOM        = desc("container_oom_events_total", "Count of out of memory events observed for the container.", baseLabels, runtimeapi.MetricType_COUNTER)
	mProcesses  = desc("container_processes", "Number of processes running inside the container.", baseLabels, runtimeapi.MetricType_GAUGE)
	mFsUsage    = desc("container_fs_usage_bytes", "Number of bytes consumed by the container's writable layer.", baseLabels, runtimeapi.MetricType_GAUGE)
	mFsInodes   = desc("container_fs_inodes_total", "Number of inodes used by the container's writable layer.", baseLabels, runtimeapi.MetricType_GAUGE)
	mRxBytes    = desc("container_network_receive_bytes_total", "Cumulative count of bytes received.", networkLabels, runtimeapi.MetricType_COUNTER)
	mRxErrors   = desc("container_network_receive_errors_total", "Cumulative count of errors encountered while receiving.", networkLabels, runtimeapi.MetricType_COUNTER)
	mTxBytes    = desc("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.", networkLabels, runtimeapi.MetricType_COUNTER)
	mTxErrors   = desc("container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting.", networkLabels, runtimeapi.MetricType_COUNTER)

	allMetrics = []metricDesc{mCPU, mMemUsage, mWorkingSet, mRSS, mOOM, mProcesses, mFsUsage, mFsInodes, mRxBytes, mRxErrors, mTxBytes, mTxErrors}
)

func (s *Server) ListMetricDescriptors(ctx context.Context, r *runtimeapi.ListMetricDescriptorsRequest) (*runtimeapi.ListMetricDescriptorsResponse, error) {
	out := make([]*runtimeapi.MetricDescriptor, len(allMetrics))
	for i, m := range allMetrics {
		out[i] = m.MetricDescriptor
	}
	return &runtimeapi.ListMetricDescriptorsResponse{Descriptors: out}, nil
}

func (s *Server) ListPodSandboxMetrics(ctx context.Context, r *runtimeapi.ListPodSandboxMetricsRequest) (*runtimeapi.ListPodSandboxMetricsResponse, error) {
	return &runtimeapi.ListPodSandboxMetricsResponse{PodMetrics: s.podMetrics(ctx)}, nil
}

func (s *Server) StreamPodSandboxMetrics(r *runtimeapi.StreamPodSandboxMetricsRequest, stream runtimeapi.RuntimeService_StreamPodSandboxMetricsServer) error {
	return sendBatches(s.podMetrics(stream.Context()), func(b []*runtimeapi.PodSandboxMetrics) error {
		return stream.Send(&runtimeapi.StreamPodSandboxMetricsResponse{PodSandboxMetrics: b})
	})
}

func (s *Server) podMetrics(ctx context.Context) []*runtimeapi.PodSandboxMetrics {
	pods := s.Sandboxes.List()
	if len(pods) == 0 || ctx.Err() != nil {
		return nil
	}
	var out []*runtimeapi.PodSandboxMetrics
	for _, ps := range s.Stats.Pods(pods, s.containersByPod()) {
		p := ps.Pod
		pm := &runtimeapi.PodSandboxMetrics{PodSandboxId: p.ID}
		// The pod itself is named "POD", as cAdvisor names the sandbox.
		pm.Metrics = usageMetrics(nil, []string{p.ID, "POD", ""}, &ps.Usage)
		if n := ps.Network; n != nil {
			for _, ifc := range n.Interfaces {
				l := []string{p.ID, "POD", "", ifc.Name}
				pm.Metrics = append(pm.Metrics,
					metric(mRxBytes, 0, ifc.RxBytes, l), metric(mRxErrors, 0, ifc.RxErrors, l),
					metric(mTxBytes, 0, ifc.TxBytes, l), metric(mTxErrors, 0, ifc.TxErrors, l))
			}
		}
		for _, cs := range ps.Containers {
			if cs.CPU == nil {
				continue // not running: cAdvisor reports live containers only
			}
			c := cs.Container
			l := []string{c.ID, c.Name, c.Image}
			ms := usageMetrics(nil, l, &cs.Usage)
			if d := cs.WritableLayer; d != nil {
				ms = append(ms, metric(mFsUsage, d.At.UnixNano(), d.Bytes, l), metric(mFsInodes, d.At.UnixNano(), d.Inodes, l))
			}
			pm.ContainerMetrics = append(pm.ContainerMetrics, &runtimeapi.ContainerMetrics{ContainerId: c.ID, Metrics: ms})
		}
		out = append(out, pm)
	}
	return out
}

// usageMetrics appends the cgroup-derived metrics of u. Their timestamp is
// 0: read live, as the CRI asks.
func usageMetrics(ms []*runtimeapi.Metric, labels []string, u *stats.Usage) []*runtimeapi.Metric {
	if u.CPU != nil {
		ms = append(ms, metric(mCPU, 0, u.CPU.UsageNanos/uint64(time.Second), append(labels[:len(labels):len(labels)], "total")))
	}
	if m := u.Memory; m != nil {
		ms = append(ms, metric(mMemUsage, 0, m.Usage, labels), metric(mWorkingSet, 0, m.WorkingSet, labels),
			metric(mRSS, 0, m.RSS, labels), metric(mOOM, 0, m.OOMKills, labels))
	}
	if u.Processes != nil {
		ms = append(ms, metric(mProcesses, 0, *u.Processes, labels))
	}
	return ms
}

func metric(d metricDesc, ts int64, v uint64, labels []string) *runtimeapi.Metric {
	return &runtimeapi.Metric{Name: d.Name, Timestamp: ts, MetricType: d.typ, LabelValues: labels, Value: u64(v)}
}
