#!/usr/bin/env bash
# Builds berth's two C helpers into DIR: berth-pause (cmd/berth-pause,
# PID 1 of a pod that shares its PID namespace) and berth-monitor
# (cmd/berth-monitor, the per-container monitor). Both are small,
# single-threaded, static C programs; their files' headers say why they
# are C. Every build of them goes through here: hack/install.sh,
# hack/bench-peer.sh, the e2e framework, the monitor package's tests.
# Usage: hack/build-helpers.sh DIR   (CC overrides the compiler, default cc)
set -euo pipefail
if (($# != 1)); then
	echo "usage: $0 DIR" >&2
	exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
dir=$1
mkdir -p "$dir"
for name in berth-pause berth-monitor; do
	src="$root/cmd/$name/${name#berth-}.c"
	out="$dir/$name"
	# Into a temp file beside OUT, then renamed: a running berthd (or a
	# reader of OUT) never sees a half-written binary.
	tmp=$(mktemp "$out.XXXXXX")
	trap 'rm -f "$tmp"' EXIT
	"${CC:-cc}" -static -Os -s -Wall -Wextra -Werror -fstack-protector-strong -D_FORTIFY_SOURCE=2 \
		-o "$tmp" "$src"
	chmod 0755 "$tmp"
	mv -f "$tmp" "$out"
	trap - EXIT
done
