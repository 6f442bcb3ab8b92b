#!/usr/bin/env bash
# A local 3-node RabbitMQ cluster from the installed rabbitmq-server, beside
# the machine's own broker (rabbit@..., 127.0.0.1:5672), which it never
# touches:
#
#   internal/scripts/cluster.sh start    # `make cluster`: start (or keep) the nodes, print AMQP_URL
#   internal/scripts/cluster.sh stop     # `make cluster-stop`: stop them; their data stays
#   internal/scripts/cluster.sh status   # which nodes run, and AMQP_URL
#
# Nodes sagaflow1@localhost, sagaflow2@localhost, sagaflow3@localhost listen
# for AMQP on 127.0.0.1:5681, 5682, 5683 (guest/guest, from loopback), for
# Erlang distribution on 25681, 25682, 25683, and keep their configuration,
# data and logs under .data/cluster/<node>/. Both commands are idempotent.
#
# Environment (for a second cluster, or the tests):
#   CLUSTER_PORT_BASE  first AMQP port (5681); node i uses BASE+i-1 and BASE+20000+i-1
#   CLUSTER_PREFIX     node name prefix (sagaflow)
#   CLUSTER_DIR        data directory (.data/cluster in the repository)
#
# Run it as root (the Debian package's tools then run the nodes as the
# rabbitmq user, with its Erlang cookie) or as the user RabbitMQ runs as.
# The layout and the VM marker (-sagaflow_rmqcluster NODE) are those of
# internal/rmqcluster, whose tests run this script.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
base="${CLUSTER_PORT_BASE:-5681}"
prefix="${CLUSTER_PREFIX:-sagaflow}"
dir="${CLUSTER_DIR:-$root/.data/cluster}"
nodes=3
marker=-sagaflow_rmqcluster
start_timeout=120

die() {
	echo "cluster: $*" >&2
	exit 1
}

usage() { die "usage: $0 start|stop|status"; }

validate() {
	[[ "$base" =~ ^[0-9]+$ ]] || die "CLUSTER_PORT_BASE $base: want a port number"
	((base >= 1024 && base + 20000 + nodes - 1 <= 65535)) || die "CLUSTER_PORT_BASE $base: ports $base..$((base + 20000 + nodes - 1)) must lie in 1024..65535"
	local p
	for ((p = base; p < base + nodes; p++)); do
		case "$p" in 5672 | 15672) die "CLUSTER_PORT_BASE $base: its ports overlap the machine's broker (5672, 15672, 25672, 35672-35682)" ;; esac
		if ((p + 20000 == 25672 || (p + 20000 >= 35672 && p + 20000 <= 35682))); then
			die "CLUSTER_PORT_BASE $base: its ports overlap the machine's broker (5672, 15672, 25672, 35672-35682)"
		fi
	done
	[[ "$prefix" =~ ^[a-z][a-z0-9_-]{0,30}$ && "$prefix" != rabbit ]] || die "CLUSTER_PREFIX $prefix: want lower-case letters, digits, '-' or '_', starting with a letter, and not rabbit"
	case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
	for tool in rabbitmq-server rabbitmqctl; do
		command -v "$tool" >/dev/null 2>&1 || die "$tool not found: install RabbitMQ (apt-get install rabbitmq-server) and put its tools on PATH"
	done
	# The Debian package's tools refuse any other user.
	if id -u rabbitmq >/dev/null 2>&1 && [ "$(id -u)" != 0 ] && [ "$(id -u)" != "$(id -u rabbitmq)" ]; then
		die "run it as root (sudo make cluster) or as the rabbitmq user, whose Erlang cookie the nodes share"
	fi
}

name() { echo "$prefix$1@localhost"; }
node_dir() { echo "$dir/$prefix$1"; }
amqp_port() { echo $((base + $1 - 1)); }
dist_port() { echo $((base + 20000 + $1 - 1)); }

# urls prints the nodes' AMQP URLs, comma-separated.
urls() {
	local i out=""
	for ((i = 1; i <= nodes; i++)); do
		out+="${out:+,}amqp://guest:guest@127.0.0.1:$(amqp_port "$i")/"
	done
	echo "$out"
}

# pids prints the processes of node $1's Erlang VM, found by the marker
# argument on their command line.
pids() {
	local node f pid j args
	node="$(name "$1")"
	for f in /proc/[0-9]*/cmdline; do
		mapfile -d '' args 2>/dev/null <"$f" || continue
		for ((j = 0; j + 1 < ${#args[@]}; j++)); do
			if [[ "${args[j]}" == "$marker" && "${args[j + 1]}" == "$node" ]]; then
				pid="${f#/proc/}"
				echo "${pid%/cmdline}"
				break
			fi
		done
	done
}

vm_running() { [ -n "$(pids "$1")" ]; }

# node_env exports node $1's RabbitMQ environment (in a subshell).
node_env() {
	local d
	d="$(node_dir "$1")"
	unset RABBITMQ_NODENAME RABBITMQ_NODE_PORT RABBITMQ_CONFIG_FILE
	export RABBITMQ_NODENAME="$(name "$1")"
	export RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf"
	export RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf"
	export RABBITMQ_MNESIA_BASE="$d/mnesia"
	export RABBITMQ_LOG_BASE="$d/log"
	export RABBITMQ_DIST_PORT="$(dist_port "$1")"
	export RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins"
	export RABBITMQ_PID_FILE="$d/pid"
	export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} $marker $(name "$1")"
}

# ctl runs rabbitmqctl on node $1, bounded by $CTL_TIMEOUT seconds.
ctl() {
	local i="$1"
	shift
	(node_env "$i" && timeout "${CTL_TIMEOUT:-60}" rabbitmqctl -n "$(name "$i")" "$@")
}

log_tail() {
	local d log
	d="$(node_dir "$1")"
	log="$d/log/$(name "$1").log"
	[ -s "$log" ] || log="$d/startup.out"
	tail -n 5 "$log" 2>/dev/null | tr '\n' ' ' || true
}

# lay_out writes node $1's configuration, once.
lay_out() {
	local d
	d="$(node_dir "$1")"
	mkdir -p "$d/mnesia" "$d/log"
	chmod 755 "$dir" "$d"
	[ -f "$d/rabbitmq.conf" ] || echo "listeners.tcp.local = 127.0.0.1:$(amqp_port "$1")" >"$d/rabbitmq.conf"
	# No plugins: the management plugin would want a port of its own.
	[ -f "$d/enabled_plugins" ] || echo '[].' >"$d/enabled_plugins"
	# In place of /etc/rabbitmq/rabbitmq-env.conf, which names the machine's node.
	[ -f "$d/rabbitmq-env.conf" ] || echo 'ERL_EPMD_ADDRESS=127.0.0.1' >"$d/rabbitmq-env.conf"
	if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then
		chown -R rabbitmq:rabbitmq "$d"
		chown rabbitmq:rabbitmq "$dir"
	fi
}

# await waits until RabbitMQ runs on node $1, failing early if its VM exits.
await() {
	local i="$1" end=$((SECONDS + start_timeout))
	until CTL_TIMEOUT=$((start_timeout + 10)) ctl "$i" await_startup --timeout $((end - SECONDS > 0 ? end - SECONDS : 1)) >/dev/null 2>&1; do
		vm_running "$i" || die "$(name "$i") exited while starting; log: $(log_tail "$i")"
		((SECONDS < end)) || die "$(name "$i") did not start within ${start_timeout}s; log: $(log_tail "$i")"
		sleep 0.5 # polling: nothing announces the VM's registration
	done
}

start() {
	local i running=0
	mkdir -p "$dir"
	for ((i = 1; i <= nodes; i++)); do
		if vm_running "$i"; then
			running=$((running + 1))
			continue
		fi
		lay_out "$i"
		# All nodes boot at once: a node that was stopped before the last one
		# waits for its peers.
		(node_env "$i" && exec rabbitmq-server -detached >>"$(node_dir "$i")/startup.out" 2>&1) ||
			die "rabbitmq-server -detached for $(name "$i") failed; log: $(log_tail "$i")"
	done
	for ((i = 1; i <= nodes; i++)); do
		await "$i"
	done
	for ((i = 2; i <= nodes; i++)); do
		[ -f "$(node_dir "$i")/joined" ] && continue
		local step
		for step in stop_app "join_cluster $(name 1)" start_app; do
			# shellcheck disable=SC2086 # step is a command and its argument
			out="$(ctl "$i" $step 2>&1)" || die "$(name "$i"): $step failed: $(echo "$out" | grep -v '^$' | head -3 | tr '\n' ' ')"
		done
		touch "$(node_dir "$i")/joined"
	done
	if ((running == nodes)); then
		echo "The cluster is already running: $(name 1), $(name 2), $(name 3) (data and logs in $dir)."
	else
		echo "The cluster runs: $(name 1), $(name 2), $(name 3) (data and logs in $dir)."
	fi
	echo "AMQP_URL=$(urls)"
}

stop() {
	local i
	# The first node stops last, so that it may boot on its own next time.
	for ((i = nodes; i >= 1; i--)); do
		if ! vm_running "$i"; then
			echo "$(name "$i") is not running."
			continue
		fi
		ctl "$i" stop >/dev/null 2>&1 || true
		local end=$((SECONDS + 30)) pid
		while vm_running "$i" && ((SECONDS < end)); do
			sleep 0.2 # polling: the VM belongs to another user
		done
		for pid in $(pids "$i"); do
			kill -9 "$pid" 2>/dev/null || true
		done
		echo "$(name "$i") stopped."
	done
}

status() {
	local i
	for ((i = 1; i <= nodes; i++)); do
		if vm_running "$i"; then
			echo "$(name "$i") runs (AMQP 127.0.0.1:$(amqp_port "$i"))."
		else
			echo "$(name "$i") is not running."
		fi
	done
	echo "AMQP_URL=$(urls)"
}

[ $# -eq 1 ] || usage
validate
case "$1" in
start) start ;;
stop) stop ;;
status) status ;;
*) usage ;;
esac
