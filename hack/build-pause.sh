#!/usr/bin/env bash
# Builds berth-pause (cmd/berth-pause/pause.c) into OUT: a small,
# single-threaded, static C program, as Kubernetes' pause is (see the
# file's header for why it is C). Every build of berth-pause goes through
# here: hack/install.sh, hack/bench-peer.sh, the e2e framework.
# Usage: hack/build-pause.sh OUT   (CC overrides the compiler, default cc)
set -euo pipefail
if (($# != 1)); then
	echo "usage: $0 OUT" >&2
	exit 2
fi
src="$(cd "$(dirname "$0")/.." && pwd)/cmd/berth-pause/pause.c"
out=$1
# Into a temp file beside OUT, then renamed: a running berthd (or a
# reader of OUT) never sees a half-written binary.
tmp=$(mktemp "$out.XXXXXX")
trap 'rm -f "$tmp"' EXIT
"${CC:-cc}" -static -Os -s -Wall -Wextra -Werror -fstack-protector-strong -D_FORTIFY_SOURCE=2 \
	-o "$tmp" "$src"
chmod 0755 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
