#!/usr/bin/env bash
# Measures the figures in docs/PERFORMANCE.md against a real berthd. Needs
# root; run on an otherwise idle machine. Each benchmark reports its figures
# as metrics (p50/p99 in ms, memory in MiB); nothing here asserts on time.
#
#   hack/bench.sh            all of them (about 5 minutes)
#   hack/bench.sh PodStart   only benchmarks matching a regexp
#
# berth beside containerd, through the same client: hack/bench-peer.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
only="${1:-}"
bench() { # name benchtime
	if [ -z "$only" ] || [[ "$1" =~ $only ]]; then
		go test ./test/bench -count=1 -timeout 90m -run '^$' -bench "^Benchmark$1\$" -benchtime "$2" | grep -E '^Benchmark|^(ok|FAIL)'
	fi
}
bench PodStart 50x       # RunPodSandbox+CreateContainer+StartContainer, then teardown
bench BareRuncRun 50x    # the floor: runc run --detach of the same busybox sleep
bench Memory 1x          # berthd RSS idle and with 20 pods; conmon PSS
bench NetworkSetup 50x   # CNI ADD/DEL
bench ExecSync 200x      # ExecSync of echo, and bare runc exec
bench ListContainerStats 200x
bench Pull 5x            # cold pull of a 5-layer 200 MB image, 3 and 1 downloads
bench CrashChurn 1x      # kill -9 during pod and image churn, 100 points
# critest's own benchmarks (pod, container, image lifecycles; start a pod and
# container from scratch), through the same harness as the conformance run.
if [ -z "$only" ] || [[ Critest =~ $only ]]; then
	./hack/critest.sh --benchmark "${CRITEST_BENCH_DIR:-$(mktemp -d)}" | grep -E '^critest|create PodSandbox and container|^(ok|FAIL)'
fi
# The same with every pod under gVisor.
if [ -z "$only" ] || [[ CritestRunsc =~ $only ]]; then
	./hack/critest.sh --runtime-handler runsc --benchmark "$(mktemp -d)" | grep -E '^critest|create PodSandbox and container|^(ok|FAIL)'
fi
