#!/usr/bin/env bash
# Measures the figures in docs/PERFORMANCE.md against a real berthd: pod
# start and teardown latency over 50 sequential pods, berthd RSS idle and
# with 20 pods, conmon PSS, and the floor (a bare `runc run`). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
go test ./test/bench -count=1 -run '^$' -bench 'PodStart|BareRuncRun' -benchtime 50x
go test ./test/bench -count=1 -run '^$' -bench 'Memory' -benchtime 1x
