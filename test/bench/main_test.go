// Package bench measures berth against the targets in docs/PERFORMANCE.md:
// pod start latency, teardown latency, daemon RSS and per-container monitor
// memory, each beside its floor (a bare `runc run` of the same container).
//
//	go test ./test/bench -run '^$' -bench . -benchtime 50x
//
// Figures are reported as benchmark metrics (p50-ms, p99-ms, MiB); nothing
// here asserts on time.
package bench

import (
	"testing"

	"github.com/berth-project/berth/test/e2e/framework"
)

func TestMain(m *testing.M) { framework.Main(m) }
