#!/usr/bin/env bash
# Side by side: berth and containerd, measured by the same client
# (cmd/berth-bench) with the same workloads in one run, for the figures in
# docs/PERFORMANCE.md. Everything stays on this machine: a loopback
# docker-registry serves the bench images (busybox, a pause look-alike for
# containerd, random layers for the pull step) through a registry mirror for
# bench.berth.test, and both runtimes get the same CNI plugins (bridge,
# host-local, portmap; a bridge and /24 each) from the host's plugins:
# berth its built-in network with an operator's defaults (default route,
# masquerade), containerd a conflist of the same shape without ipMasq.
# Each daemon runs on its own root, state dir and socket under one temp dir;
# at the end every process it started is stopped by PID and every mount,
# network namespace, bridge, cgroup and file is removed.
#
# Needs root, the host packages of hack/install.sh and Go. Run it alone on
# an otherwise idle machine (on a shared one: under the heavy lock,
# `flock /tmp/berth-heavy.lock hack/bench-peer.sh`).
#
#   hack/bench-peer.sh [berth-bench run flags...]   e.g. --pods 10 --json out.json
#
# Environment:
#   CONTAINERD_VERSION  containerd release built from the Go module proxy (v2.4.2)
#   CONTAINERD_BIN      where containerd and containerd-shim-runc-v2 are
#                       (default ~/.cache/berth/containerd-$CONTAINERD_VERSION/bin;
#                       built there when missing)
#   RUNC                the runc that berth (its default handler), containerd
#                       and the floor all run (default: berth's own,
#                       /usr/local/lib/berth/runc, else runc on PATH)
#   BENCH_ONLY          berth or containerd: measure only that one
#   BENCH_LOG_DIR       keep the daemons' and the registry's logs there
#   BERTH_LOG_LEVEL     berthd's log level (info; debug logs each step's time)
#   BERTH_BASE_BIN      a dir with another build's berthd, berth-pause and berth-monitor, run
#                       beside the checkout's as target berth-base (before/after);
#                       make its berth-pause and berth-monitor with hack/build-helpers.sh DIR
#                       (it is C; older trees built it with go build)
#   BENCH_STEPS         1: turn on berthd's metrics endpoint and print its
#                       per-step times of the sequential workloads (off by
#                       default: the endpoint adds to berthd's memory)
#   BENCH_HOLD          1: start everything, print the berth-bench command
#                       and the daemons' sockets, and wait (instead of
#                       measuring) until this script gets SIGTERM or SIGINT;
#                       for measuring by hand against the same setup
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
CONTAINERD_VERSION="${CONTAINERD_VERSION:-v2.4.2}"
CONTAINERD_BIN="${CONTAINERD_BIN:-$HOME/.cache/berth/containerd-$CONTAINERD_VERSION/bin}"
BENCH_ONLY="${BENCH_ONLY:-}"
BENCH_LOG_DIR="${BENCH_LOG_DIR:-}"
BERTH_LOG_LEVEL="${BERTH_LOG_LEVEL:-info}"
BERTH_BASE_BIN="${BERTH_BASE_BIN:-}"
BENCH_STEPS="${BENCH_STEPS:-}"
BENCH_HOLD="${BENCH_HOLD:-}"
# One runc for all three: berth's default handler binary (hack/install.sh
# builds it; Debian's 1.1.5 when it is absent), which containerd and the
# floor then run too, so that no ratio hides a difference between runc
# versions (1.5.3 runs a container ~5 ms slower than 1.1.5 here).
RUNC="${RUNC:-}"
if [[ -z $RUNC ]]; then
	if [[ -x /usr/local/lib/berth/runc ]]; then RUNC=/usr/local/lib/berth/runc; else RUNC="$(command -v runc)"; fi
fi
CNI_BIN=/usr/lib/cni # Debian's containernetworking-plugins

if [[ $(id -u) -ne 0 ]]; then
	echo "bench-peer.sh: run as root" >&2
	exit 1
fi
for bin in runc conmon /usr/bin/docker-registry /bin/busybox "$CNI_BIN/bridge"; do
	command -v "$bin" >/dev/null || {
		echo "bench-peer.sh: $bin is missing: run hack/install.sh" >&2
		exit 1
	}
done

# Short: socket paths must stay under 108 bytes.
work="$(mktemp -d /tmp/bpeer-XXXXXX)"
pids=()
bridges=()
masq_subnets=()
note() { printf '==> %s\n' "$*" >&2; }

teardown() {
	local rc=$?
	set +e
	note "teardown"
	if [[ -n $BENCH_LOG_DIR ]]; then
		mkdir -p "$BENCH_LOG_DIR" && cp "$work"/*.log "$BENCH_LOG_DIR"/ 2>/dev/null
		cp "$work/registry/log" "$BENCH_LOG_DIR/registry.log" 2>/dev/null
	fi
	# Daemons first (SIGTERM, then SIGKILL after 20 s), by PID.
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		local pid=${pids[i]}
		kill -TERM "$pid" 2>/dev/null || continue
		for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	# What they may have left (the bench removes every pod it made, so
	# normally nothing): shims, conmons and containers whose command line
	# names this run's directory, by PID.
	for p in /proc/[0-9]*; do
		if grep -qs -- "$work" "$p/cmdline"; then
			note "left behind: pid ${p#/proc/} $(tr '\0' ' ' <"$p/cmdline" | cut -c1-120)"
			kill -KILL "${p#/proc/}" 2>/dev/null
		fi
	done
	# Mounts under the run's directory, deepest first (netns pins, overlays, shm).
	awk -v w="$work" '$5 ~ "^"w {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
		umount -l "$m" 2>/dev/null || note "could not unmount $m"
	done
	for b in "${bridges[@]}"; do
		[[ -e /sys/class/net/$b ]] && ip link del "$b"
	done
	# berthd's masquerade of its subnet (left in place by design, see
	# docs/networking.md), then the chain once no subnet uses it.
	for s in "${masq_subnets[@]}"; do
		iptables -t nat -S BERTH-POSTROUTING 2>/dev/null | grep -F -- "-s $s " | sed 's/^-A /-D /' |
			while read -r rule; do eval "iptables -t nat $rule"; done
	done
	if [[ $(iptables -t nat -S BERTH-POSTROUTING 2>/dev/null | grep -c '^-A ') == 0 ]] &&
		iptables -t nat -S BERTH-POSTROUTING >/dev/null 2>&1; then
		iptables -t nat -D POSTROUTING -m comment --comment "berth pod masquerade" -j BERTH-POSTROUTING
		iptables -t nat -X BERTH-POSTROUTING
	fi
	rm -rf "$work"
	exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

note "building berthd, berth, berth-pause, berth-monitor and berth-bench into $work/bin"
mkdir -p "$work/bin"
for c in berthd berth berth-bench; do
	CGO_ENABLED=0 go build -o "$work/bin/$c" "./cmd/$c"
done
./hack/build-helpers.sh "$work/bin"
if [[ $BENCH_ONLY != berth && ! -x $CONTAINERD_BIN/containerd-shim-runc-v2 ]]; then
	note "building containerd $CONTAINERD_VERSION and its runc shim into $CONTAINERD_BIN (a few minutes)"
	mkdir -p "$CONTAINERD_BIN"
	GOBIN="$CONTAINERD_BIN" go install \
		"github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
		"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
fi

free_port() {
	local p
	for p in $(shuf -i 20000-40000 -n 50); do
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	return 1
}
# free_subnet A.B: a /24 in A.B.0.0/16 that no interface has an address in.
free_subnet() {
	local n
	for n in $(shuf -i 1-250 -n 50); do
		if ! ip -4 addr | grep -q "inet ${1//./\\.}\.$n\."; then
			echo "$1.$n.0/24"
			return
		fi
	done
	return 1
}

note "starting a loopback registry and pushing the bench images"
port=$(free_port)
mkdir -p "$work/registry"
cat >"$work/registry/config.yml" <<CONF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/registry/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
CONF
/usr/bin/docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.1
done
"$work/bin/berth-bench" images --registry "127.0.0.1:$port" --pause-binary "$work/bin/berth-pause" >/dev/null

# One mirror configuration for both: berth's registries.d and containerd's
# config_path read the same hosts.toml layout.
mkdir -p "$work/hosts.d/bench.berth.test"
cat >"$work/hosts.d/bench.berth.test/hosts.toml" <<CONF
server = "https://bench.berth.test"

[host."http://127.0.0.1:$port"]
  capabilities = ["pull", "resolve"]
CONF

# cni_conflist DIR NAME BRIDGE SUBNET: the network berth builds in for itself
# (bridge + host-local + portmap), in a file, for containerd.
cni_conflist() {
	mkdir -p "$1"
	cat >"$1/10-bench.conflist" <<CONF
{
  "cniVersion": "1.0.0",
  "name": "$2",
  "plugins": [
    {"type": "bridge", "bridge": "$3", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$4"}]], "dataDir": "$work/cni-leases"}},
    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
  ]
}
CONF
	bridges+=("$3")
}

targets=()
socks=()
# start_berth NAME BINDIR SUBNET_PREFIX: a berthd from BINDIR (berth-pause
# beside it) on its own root, state, socket, bridge and /24.
start_berth() {
	local name=$1 bindir=$2 b="$work/$1"
	note "starting berthd ($name, from $bindir)"
	# berth's built-in network with the defaults an operator gets (default
	# route, masquerade on), on a bridge and /24 of its own; the conf dir
	# stays empty.
	local bridge subnet
	bridge="b${name:0:1}${name: -1}-$(basename "$work" | tail -c 7)"
	subnet="$(free_subnet "$3")"
	bridges+=("$bridge")
	masq_subnets+=("$subnet")
	mkdir -p "$b/net.d"
	cat >"$b.toml" <<CONF
log_level = "$BERTH_LOG_LEVEL"
[network]
conf_dir = "$b/net.d"
bin_dirs = ["$CNI_BIN"]
default_bridge = "$bridge"
default_subnet = "$subnet"
[images]
registry_config_dir = "$work/hosts.d"
[runtimes.runc]
path = "$RUNC"
CONF
	metrics=
	if [[ $BENCH_STEPS == 1 ]]; then
		mport=$(free_port)
		printf '[metrics]\naddress = "127.0.0.1:%s"\n' "$mport" >>"$b.toml"
		metrics=",metrics=http://127.0.0.1:$mport/metrics"
	fi
	"$bindir/berthd" --config "$b.toml" --root "$b/root" --state-dir "$b/state" --socket "$work/$name.sock" >"$work/$name.log" 2>&1 &
	pids+=($!)
	targets+=(--target "name=$name,endpoint=unix://$work/$name.sock,helpers=conmon|berth-monitor|berth-pause,pid=$!,cli=$work/bin/berth$metrics")
	socks+=("$name.sock")
}
if [[ $BENCH_ONLY != containerd ]]; then
	start_berth berth "$work/bin" 10.201
	# A second berth build in the same run: before/after figures of a change.
	[[ -z $BERTH_BASE_BIN ]] || start_berth berth-base "$BERTH_BASE_BIN" 10.203
fi
if [[ $BENCH_ONLY != berth ]]; then
	note "starting containerd $CONTAINERD_VERSION"
	restrict=false
	# Bit 24 of the effective capabilities: CAP_SYS_RESOURCE.
	(((0x$(awk '/^CapEff/ {print $2}' /proc/self/status) >> 24) & 1)) || restrict=true
	c="$work/containerd"
	cni_conflist "$c/net.d" bench-containerd "bc-$(basename "$work" | tail -c 7)" "$(free_subnet 10.202)"
	cat >"$c.toml" <<CONF
version = 3
root = "$c/root"
state = "$c/state"
[grpc]
  address = "$work/containerd.sock"
[debug]
  level = "info"
[plugins.'io.containerd.nri.v1.nri']
  disable = true # it would serve a socket under /var/run/nri
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "bench.berth.test/pause:3.10.2"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "$work/hosts.d"
[plugins.'io.containerd.cri.v1.runtime']
  netns_mounts_under_state_dir = true
  # As berth's restrict_oom_score_adj = "auto" does on a host without
  # CAP_SYS_RESOURCE (else runc fails to set the pause's -998).
  restrict_oom_score_adj = $restrict
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = "$RUNC"
      SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["$CNI_BIN"]
    conf_dir = "$c/net.d"
[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
CONF
	# The shim is found on PATH.
	PATH="$CONTAINERD_BIN:$PATH" "$CONTAINERD_BIN/containerd" --config "$c.toml" >"$work/containerd.log" 2>&1 &
	pids+=($!)
	targets+=(--target "name=containerd,endpoint=unix://$work/containerd.sock,helpers=containerd-shim-runc-v2|pause,pid=$!")
	socks+=(containerd.sock)
fi
for s in "${socks[@]}"; do
	for _ in $(seq 300); do [[ -S $work/$s ]] && break; sleep 0.1; done
	[[ -S $work/$s ]] || { note "no $s after 30 s"; tail -20 "$work/${s%.sock}"*.log >&2; exit 1; }
done

if [[ $BENCH_HOLD == 1 ]]; then
	note "holding: $work/bin/berth-bench run ${targets[*]} --runc $RUNC"
	note "stop with: kill $$"
	while :; do sleep 1; done
fi
note "load before: $(cat /proc/loadavg)"
rc=0
"$work/bin/berth-bench" run "${targets[@]}" --runc "$RUNC" "$@" || rc=$?
if ((rc != 0)); then
	note "berth-bench failed ($rc); daemon logs:"
	tail -n 30 "$work"/*.log >&2 || true
fi
exit "$rc"
