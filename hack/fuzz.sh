#!/usr/bin/env bash
# Runs every Go fuzz target for a bounded time each (FUZZTIME, default 20s),
# one after another on one worker (FUZZPARALLEL, default 1). New failing
# inputs land in the package's testdata/fuzz/<Target>/ and then run as
# ordinary test cases with `go test`; commit them with the fix.
#   hack/fuzz.sh                      # all targets
#   FUZZTIME=2m hack/fuzz.sh FuzzLayerUnpack FuzzParseHosts
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
fuzztime="${FUZZTIME:-20s}"
parallel="${FUZZPARALLEL:-1}"

want=("$@")
failed=()
# Every `func FuzzXxx(f *testing.F)` in the module, as "<package dir> <name>".
while read -r dir name; do
	if ((${#want[@]})) && [[ ! " ${want[*]} " == *" $name "* ]]; then
		continue
	fi
	echo "== $name ($dir, $fuzztime)"
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -parallel "$parallel" "./$dir"; then
		failed+=("$name")
	fi
done < <(grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' cmd internal test 2>/dev/null |
	while read -r f; do
		grep -oE '^func Fuzz[A-Za-z0-9_]+' "$f" | sed 's/^func //' | while read -r n; do echo "$(dirname "$f") $n"; done
	done | sort)

if ((${#failed[@]})); then
	echo "fuzz targets that failed: ${failed[*]}" >&2
	exit 1
fi
echo "all fuzz targets passed"
