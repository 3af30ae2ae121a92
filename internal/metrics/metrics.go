// Package metrics serves berthd's own Prometheus metrics: CRI call
// latencies and errors, pods and containers by state, image pulls, and the
// Go runtime. It is off unless metrics.address is set; until Install is
// called every Observe function is a no-op costing one atomic load, so
// callers need not know whether metrics are on.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"
)

const namespace = "berth"

// Sources are read at scrape time: counts of objects by state.
type Sources struct {
	Pods       func() map[string]int // state -> pods
	Containers func() map[string]int // state -> containers
}

// Metrics holds berthd's collectors.
type Metrics struct {
	reg       *prometheus.Registry
	rpcTook   *prometheus.HistogramVec
	rpcErrors *prometheus.CounterVec
	pullBytes prometheus.Counter
	pullTook  prometheus.Histogram
	stepTook  *prometheus.HistogramVec
}

var active atomic.Pointer[Metrics]

// New builds the collectors; nothing is observed until Install.
func New(src Sources) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		rpcTook: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "cri", Name: "request_duration_seconds",
			Help: "Time to answer a CRI call, by method (streams: until the stream ends).",
			// 0.5 ms to about 2 min: from in-memory lists to image pulls.
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"method"}),
		rpcErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "cri", Name: "request_errors_total",
			Help: "CRI calls that returned an error, by method and gRPC code.",
		}, []string{"method", "code"}),
		pullBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "image", Name: "pull_bytes_total",
			Help: "Bytes downloaded by image pulls.",
		}),
		pullTook: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "image", Name: "pull_duration_seconds",
			Help:    "Time taken by successful image pulls.",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 12), // 0.25 s to about 8.5 min
		}),
	}
	m.stepTook = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "cri", Name: "step_duration_seconds",
		Help: "Time of one step of a CRI call (CNI ADD, rootfs mount, runtime create, record write, ...), by method and step.",
		// 0.1 ms to about 26 s.
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
	}, []string{"method", "step"})
	m.reg.MustRegister(m.rpcTook, m.rpcErrors, m.pullBytes, m.pullTook, m.stepTook,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&stateCollector{src: src,
			pods: prometheus.NewDesc(namespace+"_pods", "Pod sandboxes by state.", []string{"state"}, nil),
			ctrs: prometheus.NewDesc(namespace+"_containers", "Containers by state.", []string{"state"}, nil),
		},
	)
	return m
}

// Install makes m the target of the package's Observe functions.
func (m *Metrics) Install() { active.Store(m) }

// Handler serves the metrics page.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry lets other packages add collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveRPC records one CRI call: method is gRPC's full method name,
// code the status it returned.
func ObserveRPC(method string, took time.Duration, code codes.Code) {
	m := active.Load()
	if m == nil {
		return
	}
	name := method[strings.LastIndexByte(method, '/')+1:]
	m.rpcTook.WithLabelValues(name).Observe(took.Seconds())
	if code != codes.OK {
		m.rpcErrors.WithLabelValues(name, code.String()).Inc()
	}
}

// ObservePull records one finished image pull: the bytes it downloaded
// (blobs fetched from the registry, not those already present) and how
// long it took. The pull code calls it once per successful pull.
func ObservePull(bytes int64, took time.Duration) {
	m := active.Load()
	if m == nil {
		return
	}
	if bytes > 0 {
		m.pullBytes.Add(float64(bytes))
	}
	m.pullTook.Observe(took.Seconds())
}

// Serve listens on addr and serves /metrics until ctx ends. It returns once
// the listener is up (or failed), so a bad address stops the daemon's start.
func Serve(ctx context.Context, addr string, m *Metrics, log *slog.Logger) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: listen on %s (metrics.address): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "address", addr, "err", err)
		}
	}()
	log.Info("serving metrics", "address", lis.Addr().String())
	return nil
}

// stateCollector reports object counts computed at scrape time, so nothing
// has to be kept in step with every state change.
type stateCollector struct {
	src        Sources
	pods, ctrs *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pods
	ch <- c.ctrs
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	emit := func(d *prometheus.Desc, counts func() map[string]int) {
		if counts == nil {
			return
		}
		for state, n := range counts() {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(n), state)
		}
	}
	emit(c.pods, c.src.Pods)
	emit(c.ctrs, c.src.Containers)
}
