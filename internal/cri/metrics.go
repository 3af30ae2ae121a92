package cri

import (
	"context"
	"strconv"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/stats"
)

// Kubelet (with PodAndContainerStatsFromCRI) serves these as its
// /metrics/cadvisor page, so the names, help and label keys are cAdvisor's
// (as CRI-O serves them): id, name, image on every series; "cpu" on CPU
// time, "interface" on network, "device" on filesystem I/O.
// Values are CRI's unsigned integers: seconds are whole seconds.

type metricDesc struct {
	*runtimeapi.MetricDescriptor
	typ runtimeapi.MetricType
}

var baseLabels = []string{"id", "name", "image"}

func desc(typ runtimeapi.MetricType, name, help string, extraLabels ...string) metricDesc {
	labels := append(append([]string(nil), baseLabels...), extraLabels...)
	return metricDesc{&runtimeapi.MetricDescriptor{Name: name, Help: help, LabelKeys: labels}, typ}
}

const (
	counter = runtimeapi.MetricType_COUNTER
	gauge   = runtimeapi.MetricType_GAUGE
)

var (
	mCPU             = desc(counter, "container_cpu_usage_seconds_total", "Cumulative CPU time consumed in seconds.", "cpu")
	mCPUUser         = desc(counter, "container_cpu_user_seconds_total", "Cumulative user CPU time consumed in seconds.")
	mCPUSystem       = desc(counter, "container_cpu_system_seconds_total", "Cumulative system CPU time consumed in seconds.")
	mCFSPeriods      = desc(counter, "container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.")
	mCFSThrottled    = desc(counter, "container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.")
	mCFSThrottledSec = desc(counter, "container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled, in seconds.")

	mMemUsage    = desc(gauge, "container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed.")
	mWorkingSet  = desc(gauge, "container_memory_working_set_bytes", "Current working set in bytes.")
	mRSS         = desc(gauge, "container_memory_rss", "Size of RSS in bytes.")
	mMemCache    = desc(gauge, "container_memory_cache", "Number of bytes of page cache memory.")
	mMappedFile  = desc(gauge, "container_memory_mapped_file", "Size of memory mapped files in bytes.")
	mMemSwap     = desc(gauge, "container_memory_swap", "Container swap usage in bytes.")
	mMemKernel   = desc(gauge, "container_memory_kernel_usage", "Size of kernel memory allocated in bytes.")
	mMemFailcnt  = desc(counter, "container_memory_failcnt", "Number of memory usage hits limits.")
	mMemMax      = desc(gauge, "container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes.")
	mMemFailures = desc(counter, "container_memory_failures_total", "Cumulative count of memory allocation failures.", "failure_type", "scope")
	mOOM         = desc(counter, "container_oom_events_total", "Count of out of memory events observed for the container.")

	mRxBytes   = desc(counter, "container_network_receive_bytes_total", "Cumulative count of bytes received.", "interface")
	mRxPackets = desc(counter, "container_network_receive_packets_total", "Cumulative count of packets received.", "interface")
	mRxDropped = desc(counter, "container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving.", "interface")
	mRxErrors  = desc(counter, "container_network_receive_errors_total", "Cumulative count of errors encountered while receiving.", "interface")
	mTxBytes   = desc(counter, "container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.", "interface")
	mTxPackets = desc(counter, "container_network_transmit_packets_total", "Cumulative count of packets transmitted.", "interface")
	mTxDropped = desc(counter, "container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting.", "interface")
	mTxErrors  = desc(counter, "container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting.", "interface")

	mProcesses  = desc(gauge, "container_processes", "Number of processes running inside the container.")
	mThreads    = desc(gauge, "container_threads", "Number of threads running inside the container.")
	mThreadsMax = desc(gauge, "container_threads_max", "Maximum number of threads allowed inside the container, infinity if value is zero.")
	mFDs        = desc(gauge, "container_file_descriptors", "Number of open file descriptors for the container.")
	mSockets    = desc(gauge, "container_sockets", "Number of open sockets for the container.")

	mFsUsage      = desc(gauge, "container_fs_usage_bytes", "Number of bytes consumed by the container's writable layer.")
	mFsLimit      = desc(gauge, "container_fs_limit_bytes", "Number of bytes the filesystem holding the writable layer can hold.")
	mFsInodes     = desc(gauge, "container_fs_inodes_total", "Number of inodes of the filesystem holding the writable layer.")
	mFsInodesFree = desc(gauge, "container_fs_inodes_free", "Number of free inodes of the filesystem holding the writable layer.")
	mFsReadBytes  = desc(counter, "container_fs_reads_bytes_total", "Cumulative count of bytes read.", "device")
	mFsReads      = desc(counter, "container_fs_reads_total", "Cumulative count of reads completed.", "device")
	mFsWriteBytes = desc(counter, "container_fs_writes_bytes_total", "Cumulative count of bytes written.", "device")
	mFsWrites     = desc(counter, "container_fs_writes_total", "Cumulative count of writes completed.", "device")
	mBlkio        = desc(counter, "container_blkio_device_usage_total", "Blkio device bytes usage.", "device", "major", "minor", "operation")

	mSpecCPUPeriod  = desc(gauge, "container_spec_cpu_period", "CPU period of the container, in microseconds.")
	mSpecCPUQuota   = desc(gauge, "container_spec_cpu_quota", "CPU quota of the container, in microseconds per period; 0: none.")
	mSpecCPUShares  = desc(gauge, "container_spec_cpu_shares", "CPU share of the container.")
	mSpecMemLimit   = desc(gauge, "container_spec_memory_limit_bytes", "Memory limit for the container in bytes; 0: none.")
	mSpecMemReserve = desc(gauge, "container_spec_memory_reservation_limit_bytes", "Memory reservation limit for the container in bytes; 0: none.")
	mSpecSwapLimit  = desc(gauge, "container_spec_memory_swap_limit_bytes", "Memory swap limit for the container in bytes; 0: none.")

	mLastSeen  = desc(gauge, "container_last_seen", "Last time a container was seen by the exporter, in seconds since the epoch.")
	mStartTime = desc(gauge, "container_start_time_seconds", "Start time of the container since unix epoch in seconds.")

	allMetrics = []metricDesc{
		mCPU, mCPUUser, mCPUSystem, mCFSPeriods, mCFSThrottled, mCFSThrottledSec,
		mMemUsage, mWorkingSet, mRSS, mMemCache, mMappedFile, mMemSwap, mMemKernel, mMemFailcnt, mMemMax, mMemFailures, mOOM,
		mRxBytes, mRxPackets, mRxDropped, mRxErrors, mTxBytes, mTxPackets, mTxDropped, mTxErrors,
		mProcesses, mThreads, mThreadsMax, mFDs, mSockets,
		mFsUsage, mFsLimit, mFsInodes, mFsInodesFree, mFsReadBytes, mFsReads, mFsWriteBytes, mFsWrites, mBlkio,
		mSpecCPUPeriod, mSpecCPUQuota, mSpecCPUShares, mSpecMemLimit, mSpecMemReserve, mSpecSwapLimit,
		mLastSeen, mStartTime,
	}
)

// diskWait bounds how long a metrics call waits for the first measurement
// of a new writable layer.
const diskWait = 2 * time.Second

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
	now := time.Now()
	var out []*runtimeapi.PodSandboxMetrics
	for _, ps := range s.Stats.PodsDetail(pods, s.containersByPod(), diskWait) {
		out = append(out, podSandboxMetrics(ps, now))
	}
	return out
}

// podSandboxMetrics turns one pod's stats into metrics: the pod (named
// "POD", as cAdvisor names the sandbox) gets its cgroup's usage and its
// network counters, each running container everything else. Exited
// containers get no series: cAdvisor reports live containers only.
func podSandboxMetrics(ps *stats.PodStats, now time.Time) *runtimeapi.PodSandboxMetrics {
	p := ps.Pod
	pod := &series{labels: []string{p.ID, "POD", ""}}
	pod.usage(&ps.Usage)
	if n := ps.Network; n != nil {
		for _, ifc := range n.Interfaces {
			pod.add(mRxBytes, ifc.RxBytes, ifc.Name)
			pod.add(mRxPackets, ifc.RxPackets, ifc.Name)
			pod.add(mRxDropped, ifc.RxDropped, ifc.Name)
			pod.add(mRxErrors, ifc.RxErrors, ifc.Name)
			pod.add(mTxBytes, ifc.TxBytes, ifc.Name)
			pod.add(mTxPackets, ifc.TxPackets, ifc.Name)
			pod.add(mTxDropped, ifc.TxDropped, ifc.Name)
			pod.add(mTxErrors, ifc.TxErrors, ifc.Name)
		}
	}
	pm := &runtimeapi.PodSandboxMetrics{PodSandboxId: p.ID, Metrics: pod.ms}
	for _, cs := range ps.Containers {
		if cs.CPU == nil {
			continue
		}
		pm.ContainerMetrics = append(pm.ContainerMetrics, &runtimeapi.ContainerMetrics{
			ContainerId: cs.Container.ID,
			Metrics:     containerMetrics(cs, now),
		})
	}
	return pm
}

func containerMetrics(cs *stats.ContainerStats, now time.Time) []*runtimeapi.Metric {
	c := cs.Container
	m := &series{labels: []string{c.ID, c.Name, c.Image}}
	m.usage(&cs.Usage)
	if u := cs.Processes; u != nil {
		m.add(mThreads, *u) // pids.current counts tasks
	}
	if d := cs.Detail; d != nil {
		m.detail(d)
	}
	if fs := cs.Filesystem; fs != nil {
		m.add(mFsLimit, fs.CapacityBytes)
		m.add(mFsInodes, fs.Inodes)
		m.add(mFsInodesFree, fs.InodesFree)
	}
	if d := cs.WritableLayer; d != nil {
		// Measured in the background: the value carries its own time.
		m.ts = d.At.UnixNano()
		m.add(mFsUsage, d.Bytes)
		m.ts = 0
	}
	m.add(mLastSeen, uint64(now.Unix()))
	if c.StartedAt > 0 {
		m.add(mStartTime, uint64(c.StartedAt/int64(time.Second)))
	}
	return m.ms
}

// series collects the metrics of one pod or container, all with its labels.
type series struct {
	labels []string
	ts     int64 // 0: read live, as CRI asks
	ms     []*runtimeapi.Metric
}

func (s *series) add(d metricDesc, v uint64, extra ...string) {
	labels := s.labels
	if len(extra) > 0 {
		labels = append(append([]string(nil), s.labels...), extra...)
	}
	s.ms = append(s.ms, &runtimeapi.Metric{Name: d.Name, Timestamp: s.ts, MetricType: d.typ, LabelValues: labels, Value: u64(v)})
}

// usage adds the metrics of a Reading; a cgroup that could not be read
// (nil parts) adds none.
func (s *series) usage(u *stats.Usage) {
	if u.CPU != nil {
		s.add(mCPU, u.CPU.UsageNanos/uint64(time.Second), "total")
	}
	if m := u.Memory; m != nil {
		s.add(mMemUsage, m.Usage)
		s.add(mWorkingSet, m.WorkingSet)
		s.add(mRSS, m.RSS)
		s.add(mOOM, m.OOMKills)
	}
}

func (s *series) detail(d *stats.Detail) {
	sec := uint64(time.Second)
	s.add(mCPUUser, d.CPUUserNanos/sec)
	s.add(mCPUSystem, d.CPUSystemNanos/sec)
	s.add(mCFSPeriods, d.CFSPeriods)
	s.add(mCFSThrottled, d.CFSThrottledPeriods)
	s.add(mCFSThrottledSec, d.CFSThrottledNanos/sec)

	s.add(mMemCache, d.MemCache)
	s.add(mMappedFile, d.MemMappedFile)
	s.add(mMemSwap, d.MemSwap)
	s.add(mMemKernel, d.MemKernel)
	s.add(mMemFailcnt, d.MemFailcnt)
	s.add(mMemMax, d.MemMaxUsage)
	s.add(mMemFailures, d.PgFault, "pgfault", "container")
	s.add(mMemFailures, d.PgMajFault, "pgmajfault", "container")
	s.add(mMemFailures, d.HierPgFault, "pgfault", "hierarchy")
	s.add(mMemFailures, d.HierPgMajFault, "pgmajfault", "hierarchy")

	s.add(mThreadsMax, d.ThreadsMax)
	if d.ProcsListed {
		s.add(mProcesses, d.Processes)
		s.add(mFDs, d.FDs)
		s.add(mSockets, d.Sockets)
	}

	for _, io := range d.IO {
		maj, min := strconv.FormatUint(io.Major, 10), strconv.FormatUint(io.Minor, 10)
		dev := maj + ":" + min
		s.add(mFsReadBytes, io.ReadBytes, dev)
		s.add(mFsReads, io.Reads, dev)
		s.add(mFsWriteBytes, io.WriteBytes, dev)
		s.add(mFsWrites, io.Writes, dev)
		s.add(mBlkio, io.ReadBytes, dev, maj, min, "read")
		s.add(mBlkio, io.WriteBytes, dev, maj, min, "write")
	}

	s.add(mSpecCPUPeriod, d.CPUPeriod)
	s.add(mSpecCPUQuota, d.CPUQuota)
	s.add(mSpecCPUShares, d.CPUShares)
	s.add(mSpecMemLimit, d.MemLimit)
	s.add(mSpecMemReserve, d.MemReservation)
	s.add(mSpecSwapLimit, d.MemSwapLimit)
}
