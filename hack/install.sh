#!/usr/bin/env bash
# Prepare a Debian 12 host to build and run berth: host packages, Go on PATH,
# berth's own runc (a current release built from the Go module proxy),
# optionally gVisor's runsc, then berthd, berth, berth-pause and berth-monitor into ./bin.
# Safe to run again: every step checks before it acts. It never starts a
# daemon.
#
#   hack/install.sh [--with-runsc] [--no-build]
#
# Environment:
#   RUNSC_VERSION  gvisor.dev/gvisor version to build (default: the pinned
#                  pseudo-version below, known to build and run here; "latest"
#                  asks the module proxy for the newest one)
#   RUNC_VERSION   runc version berth's default handler runs (default v1.5.3)
#   RUNC_DIR       where that runc goes (default /usr/local/lib/berth, off
#                  PATH, so Debian's /usr/sbin/runc stays the host's runc)
#   BIN_DIR        where runsc goes (default /usr/local/bin)
set -euo pipefail

# gVisor publishes no semver tags, only master pseudo-versions; this one was
# built with Go 1.26 and ran busybox bundles under runc-style `runsc run`.
RUNSC_VERSION="${RUNSC_VERSION:-v0.0.0-20260905035102-160fafc42237}"
RUNC_VERSION="${RUNC_VERSION:-v1.5.3}"
RUNC_DIR="${RUNC_DIR:-/usr/local/lib/berth}"
BIN_DIR="${BIN_DIR:-/usr/local/bin}"
# gcc and libc6-dev: berth-pause and berth-monitor are static C programs (hack/build-helpers.sh).
PACKAGES=(runc conmon containernetworking-plugins iptables iproute2 busybox-static
	docker-registry apache2-utils openssl libseccomp-dev skopeo gcc libc6-dev)

with_runsc=0 build=1
for arg in "$@"; do
	case "$arg" in
	--with-runsc) with_runsc=1 ;;
	--with-runc-latest) ;; # older spelling: berth's runc is always built now
	--no-build) build=0 ;;
	-h | --help)
		awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
		exit 0
		;;
	*)
		echo "install.sh: unknown argument $arg (see --help)" >&2
		exit 2
		;;
	esac
done

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
summary=()
failed=0
note() { printf '==> %s\n' "$*"; }
record() { summary+=("$(printf '%-22s %s' "$1" "$2")"); }
elapsed() { echo "$(($(date +%s) - $1))s"; }

if [[ $(id -u) -ne 0 ]]; then
	echo "install.sh: run as root (it installs packages and binaries under /usr/local)" >&2
	exit 1
fi
if ! grep -qs '^VERSION_ID="12"' /etc/os-release || ! grep -qs '^ID=debian' /etc/os-release; then
	# shellcheck disable=SC1091
	note "warning: written for Debian 12; this host is $(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown}")"
fi

# --- host packages -----------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
	if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]]; then
		missing+=("$p")
	fi
done
if ((${#missing[@]} == 0)); then
	note "packages: all ${#PACKAGES[@]} already installed"
	record packages "all present"
else
	note "packages: installing ${missing[*]}"
	t0=$(date +%s)
	# Package scripts must not start services (docker-registry ships one):
	# policy-rc.d exit 101 is Debian's "do not start" for invoke-rc.d and
	# deb-systemd-invoke. Only remove it if we created it.
	made_policy=0
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 0755 /usr/sbin/policy-rc.d
		made_policy=1
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y --no-install-recommends "${missing[@]}"
	if ((made_policy)); then
		rm -f /usr/sbin/policy-rc.d
		trap - EXIT
	fi
	record packages "installed ${missing[*]} ($(elapsed "$t0"))"
fi

# --- Go ----------------------------------------------------------------------
if [[ ":$PATH:" != *":/usr/local/go/bin:"* ]]; then
	export PATH="$PATH:/usr/local/go/bin"
fi
if ! command -v go >/dev/null; then
	echo "install.sh: no Go toolchain: unpack a go1.26+ release into /usr/local/go (https://go.dev/dl/)" >&2
	exit 1
fi
# Later login shells find go too.
if [[ -d /etc/profile.d && ! -e /etc/profile.d/go.sh ]] && ! grep -qs /usr/local/go/bin /etc/profile; then
	# shellcheck disable=SC2016 # expanded by the login shell, not here
	echo 'case ":$PATH:" in *:/usr/local/go/bin:*) ;; *) PATH="$PATH:/usr/local/go/bin" ;; esac' >/etc/profile.d/go.sh
	note "go: added /usr/local/go/bin to PATH in /etc/profile.d/go.sh"
fi
record go "$(go version | cut -d' ' -f3) at $(command -v go)"

# install_go_binary DIR NAME MODULE@VERSION CGO [BUILD FLAGS...]: build into
# a temp dir and move into DIR only once it built, so a failed build never
# replaces a working binary.
install_go_binary() {
	local dir=$1 name=$2 pkg=$3 cgo=$4
	shift 4
	local tmp rc=0
	tmp=$(mktemp -d)
	CGO_ENABLED=$cgo GOBIN="$tmp" go install "$@" "$pkg" || rc=$?
	if ((rc == 0)); then
		mkdir -p "$dir"
		install -m 0755 "$tmp/$name" "$dir/$name.new"
		mv -f "$dir/$name.new" "$dir/$name"
	fi
	rm -rf "$tmp"
	return "$rc"
}

# --- gVisor runsc (optional) -------------------------------------------------
runsc_works() {
	[[ -x "$BIN_DIR/runsc" ]] &&
		"$BIN_DIR/runsc" --version >/dev/null 2>&1 &&
		"$BIN_DIR/runsc" --network=none "do" true >/dev/null 2>&1
}
if ((with_runsc)); then
	if runsc_works; then
		note "runsc: $BIN_DIR/runsc already works, not rebuilding"
		record runsc "present ($BIN_DIR/runsc)"
	else
		if [[ $RUNSC_VERSION == latest ]]; then
			RUNSC_VERSION=$(go list -m -f '{{.Version}}' gvisor.dev/gvisor@latest)
		fi
		note "runsc: building gvisor.dev/gvisor/runsc@$RUNSC_VERSION (about a minute on 2 cores)"
		t0=$(date +%s)
		if install_go_binary "$BIN_DIR" runsc "gvisor.dev/gvisor/runsc@$RUNSC_VERSION" 0 && runsc_works; then
			record runsc "built $RUNSC_VERSION ($(elapsed "$t0")), runs 'runsc do true'"
		else
			record runsc "FAILED to build or run $RUNSC_VERSION"
			failed=1
		fi
	fi
fi

# --- berth's runc -------------------------------------------------------------
# Debian 12's runc 1.1.5 has no idmapped mounts (user namespaces) and
# misses newer mount options; berth's default handler runs a current runc,
# built with seccomp, from $RUNC_DIR, off PATH: Debian's /usr/sbin/runc
# stays what the host (and a [runtimes.<name>] handler naming it) runs.
want=${RUNC_VERSION#v}
if "$RUNC_DIR/runc" --version 2>/dev/null | grep -q "^runc version $want\$" &&
	"$RUNC_DIR/runc" --version | grep -q '^libseccomp:'; then
	note "runc: $RUNC_DIR/runc is already $want with seccomp"
	record runc "present ($RUNC_DIR/runc $want)"
else
	note "runc: building github.com/opencontainers/runc@$RUNC_VERSION with seccomp into $RUNC_DIR (about 30 s)"
	t0=$(date +%s)
	# Without the seccomp tag runc builds fine but cannot apply profiles
	# (cgo and libseccomp-dev, installed above).
	if install_go_binary "$RUNC_DIR" runc "github.com/opencontainers/runc@$RUNC_VERSION" 1 -tags seccomp &&
		"$RUNC_DIR/runc" --version | grep -q '^libseccomp:'; then
		record runc "built $want ($(elapsed "$t0")) into $RUNC_DIR"
	else
		record runc "FAILED to build $RUNC_VERSION (berthd falls back to runc on PATH)"
		failed=1
	fi
fi

# --- dynamic busybox for the critest images -----------------------------------
# critest's MaskedPaths spec needs a busybox whose sh execs applets (Debian's
# busybox-static runs them in-process). Debian's dynamic busybox conflicts
# with busybox-static, so it is unpacked into a cache dir, not installed.
BUSYBOX_DYNAMIC_DIR=/var/cache/berth/busybox-dynamic
if [[ -x $BUSYBOX_DYNAMIC_DIR/bin/busybox ]]; then
	record busybox-dynamic "present ($BUSYBOX_DYNAMIC_DIR)"
else
	note "busybox-dynamic: unpacking Debian's busybox into $BUSYBOX_DYNAMIC_DIR (for test/critest)"
	tmp=$(mktemp -d)
	if (cd "$tmp" && apt-get download busybox >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get download busybox; }) &&
		mkdir -p "$BUSYBOX_DYNAMIC_DIR" && dpkg-deb -x "$tmp"/busybox_*.deb "$BUSYBOX_DYNAMIC_DIR"; then
		record busybox-dynamic "unpacked into $BUSYBOX_DYNAMIC_DIR"
	else
		record busybox-dynamic "FAILED (apt-get download busybox)"
		failed=1
	fi
	rm -rf "$tmp"
fi

# --- berthd and berth --------------------------------------------------------
if ((build)); then
	note "build: go build -o bin/ ./cmd/berthd ./cmd/berth and hack/build-helpers.sh bin in $repo"
	t0=$(date +%s)
	# Static (no cgo): berth needs nothing from libc, and not mapping it
	# saves berthd about 1.7 MiB of RSS. berth-pause and berth-monitor are static C.
	if (cd "$repo" && CGO_ENABLED=0 go build -o bin/ ./cmd/berthd ./cmd/berth && ./hack/build-helpers.sh bin); then
		record build "$repo/bin/berthd, $repo/bin/berth, $repo/bin/berth-pause, $repo/bin/berth-monitor ($(elapsed "$t0"))"
	else
		record build "FAILED (see the go build output above)"
		failed=1
	fi
fi

# --- summary -----------------------------------------------------------------
version_of() { command -v "$1" >/dev/null && echo "$(command -v "$1"): $("$@" 2>&1 | head -1)" || echo "not found"; }
record "berth's runc" "$(version_of "$RUNC_DIR/runc" --version)"
record "runc on PATH" "$(version_of runc --version)"
record "conmon on PATH" "$(version_of conmon --version)"
record "runsc on PATH" "$(version_of runsc --version)"
record "CNI plugins" "$(find /usr/lib/cni -maxdepth 1 -type f 2>/dev/null | wc -l) in /usr/lib/cni"
echo
echo "Summary (no daemon was started):"
printf '  %s\n' "${summary[@]}"
exit "$failed"
