#!/usr/bin/env bash
# Installs what berth needs (Debian packages, the berthd and berth binaries)
# and starts berthd in the foreground with its built-in defaults:
# socket /run/berth/berth.sock, root /var/lib/berth, state /run/berth.
# Extra arguments go to berthd (e.g. --log-level debug).
set -euo pipefail
cd "$(dirname "$0")/.."
./hack/install.sh
exec ./bin/berthd "$@"
