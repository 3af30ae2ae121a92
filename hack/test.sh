#!/usr/bin/env bash
# Runs berth's whole test suite: formatting and vet checks, unit tests, and
# the end-to-end suite against a real berthd (real runc, conmon, overlayfs,
# cgroups). Needs root. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

# --with-runsc: the e2e suite runs a pod under gVisor and fails without runsc.
./hack/install.sh --with-runsc

echo "== gofmt / go vet"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change: $unformatted" >&2
	exit 1
fi
go vet ./...

echo "== unit tests"
go test -count=1 ./internal/... ./cmd/...

echo "== end-to-end tests"
# -p 1: one suite that runs containers at a time (they share host ports,
# bridges and CPU). critest and the kubelet suite run on their own below.
go test -p 1 -count=1 -timeout 40m $(go list ./test/... | grep -v -e /test/critest -e /test/kubelet)

echo "== CRI conformance (critest)"
./hack/critest.sh

echo "== CRI conformance under gVisor (critest, handler runsc)"
# About 3 minutes; skip.txt plus test/critest/skip-runsc.txt.
./hack/critest.sh --runtime-handler runsc

echo "== a real kubelet (test/kubelet)"
./hack/kubelet.sh
