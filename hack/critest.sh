#!/usr/bin/env bash
# Runs critest, the Kubernetes CRI conformance suite from cri-tools, against a
# real berthd on its own socket, root and state dir, with every image critest
# names served from a loopback registry through berthd's registry mirrors
# (test/critest). Needs root and what hack/install.sh installs. The critest
# version is pinned in test/critest/critest_test.go; the first run builds it
# from the Go module proxy (about 2 minutes) into ~/.cache/berth.
#
#   hack/critest.sh                    every spec except test/critest/skip.txt
#   hack/critest.sh 'Networking'       only the specs matching a regexp
#   hack/critest.sh --benchmark [DIR]  critest's benchmarks (JSON figures into DIR)
#   hack/critest.sh --runtime-handler runsc [REGEXP]
#                                      every pod under that RuntimeClass handler
#                                      (gVisor), skipping skip.txt and skip-runsc.txt
#                                      too; CRITEST_RUNTIME_HANDLER=runsc does the same
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
args=()
handler=${CRITEST_RUNTIME_HANDLER:-}
if [[ ${1:-} == --runtime-handler ]]; then
	handler=${2:?--runtime-handler needs a handler name}
	shift 2
fi
[[ -n $handler ]] && args+=(-critest.runtime-handler "$handler")
if [[ ${1:-} == --benchmark ]]; then
	args+=(-critest.benchmark)
	[[ -n ${2:-} ]] && args+=(-critest.benchmark-dir "$(realpath "$2")")
elif [[ -n ${1:-} ]]; then
	args+=(-critest.focus "$1")
fi
exec go test -count=1 -v -timeout 70m -run '^TestCritest$' ./test/critest/ -args "${args[@]}"
