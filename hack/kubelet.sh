#!/usr/bin/env bash
# Runs a real kubelet against a real berthd (test/kubelet): kubelet standalone
# (static pods from a directory, no API server, endpoints on 127.0.0.1 only),
# berthd on its own socket, root and state dir, images from a loopback
# registry through berthd's registry mirrors; one test per scenario, each
# followed by the e2e framework's leak check. Needs root and what
# hack/install.sh installs. The kubelet version is pinned in
# test/kubelet/build_test.go; the first run builds it from the Go module proxy
# (about 10 minutes on 2 cores) into ~/.cache/berth.
#
#   hack/kubelet.sh            every scenario
#   hack/kubelet.sh 'Probes'   only the tests matching a regexp
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
exec go test -count=1 -v -timeout 60m -run "${1:-.}" ./test/kubelet/
