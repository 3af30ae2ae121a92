package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/berth-project/berth/internal/config"
	"github.com/berth-project/berth/internal/container"
	"github.com/berth-project/berth/internal/metrics"
	"github.com/berth-project/berth/internal/sandbox"
)

// eventBacklog is how long the container events found while reconciling at
// start (exits that happened while berthd was down) are replayed to event
// subscribers that connect after the start: long enough for kubelet to
// reconnect with its backoff.
const eventBacklog = 5 * time.Minute

// serveMetrics starts the Prometheus endpoint when metrics.address is set;
// otherwise it starts nothing and the metrics hooks stay no-ops.
func serveMetrics(ctx context.Context, cfg *config.Config, log *slog.Logger, sandboxes *sandbox.Service, containers *container.Service) error {
	if cfg.Metrics.Address == "" {
		return nil
	}
	m := metrics.New(metrics.Sources{
		Pods: func() map[string]int {
			n := map[string]int{}
			for _, p := range sandboxes.List() {
				n[string(p.State)]++
			}
			return n
		},
		Containers: func() map[string]int {
			n := map[string]int{}
			for _, c := range containers.List() {
				n[string(c.State)]++
			}
			return n
		},
	})
	m.Install()
	return metrics.Serve(ctx, cfg.Metrics.Address, m, log)
}
