#!/usr/bin/env bash
# Regenerates the verb reference in docs/CLI.md (between its BEGIN/END
# markers) from the berth commands' help with cobra's markdown writer; the
# rest of the file is hand-written. cmd/berth's TestCLIDocUpToDate fails
# when the reference is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
go test -count=1 -run '^TestCLIDocUpToDate$' ./cmd/berth -args -update-cli-doc
