#!/usr/bin/env bash
# A self-hosted Temporal server on the local PostgreSQL, from the release
# `make temporal-server` builds (tools/temporal-server pins it): frontend,
# matching, worker and two history hosts as separate processes, as a
# production deployment runs them (internal/temporalcluster, whose tests
# use the same code):
#
#   internal/scripts/temporal-cluster.sh start    # `make temporal-cluster`: start (or keep) it, print TEMPORAL_ADDRESS
#   internal/scripts/temporal-cluster.sh stop     # `make temporal-cluster-stop`: stop the processes; the databases stay
#   internal/scripts/temporal-cluster.sh status   # which processes run, and TEMPORAL_ADDRESS
#   internal/scripts/temporal-cluster.sh reset    # stop, drop the databases and remove the directory
#
# Every process listens on 127.0.0.1, on the first free block of ports from
# 27200 up (the frontend's gRPC port first; each process has gRPC,
# membership and metrics ports ten apart). The databases are
# sagaflowtc_local (persistence) and sagaflowtc_local_vis (visibility);
# the configuration (<service>.yaml, dynamicconfig.yaml), the logs and the
# pids are in .data/temporal-cluster.
#
# Environment:
#   TEMPORAL_CLUSTER_DIR        directory (.data/temporal-cluster in the repository)
#   TEMPORAL_CLUSTER_DATABASES  database name (sagaflowtc_local)
#   TEMPORAL_CLUSTER_PORT_BASE  first port to try (27200)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir="${TEMPORAL_CLUSTER_DIR:-$root/.data/temporal-cluster}"
databases="${TEMPORAL_CLUSTER_DATABASES:-sagaflowtc_local}"
base="${TEMPORAL_CLUSTER_PORT_BASE:-27200}"
sqltool="${TEMPORAL_SQL_TOOL:-$root/bin/temporal-sql-tool}"
pg="${TEMPORAL_CLUSTER_POSTGRES:-127.0.0.1:5432}"

die() {
	echo "temporal-cluster: $*" >&2
	exit 1
}

[[ "$databases" =~ ^sagaflowtc_[a-z0-9_]{1,28}$ ]] || die "TEMPORAL_CLUSTER_DATABASES $databases: want sagaflowtc_ then lower-case letters, digits or '_'"
[[ "$base" =~ ^[0-9]+$ ]] && ((base >= 1024 && base <= 60000)) || die "TEMPORAL_CLUSTER_PORT_BASE $base: want a port in 1024..60000"
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac

# running lists the recorded processes that still run, as "pid name".
running() {
	[ -f "$dir/pids" ] || return 0
	while read -r pid name; do
		if kill -0 "$pid" 2>/dev/null; then echo "$pid $name"; fi
	done <"$dir/pids"
}

address() { cat "$dir/address" 2>/dev/null || true; }

start() {
	local up
	up="$(running | wc -l)"
	if [ "$up" -eq 5 ] && [ -n "$(address)" ]; then
		echo "temporal-cluster: already running"
		status
		return
	fi
	if [ "$up" -gt 0 ]; then stop; fi
	mkdir -p "$dir"
	echo "temporal-cluster: starting in $dir (databases $databases, ${databases}_vis)"
	(cd "$root" && go run ./internal/temporalcluster/clusterctl --dir "$dir" --databases "$databases" --port-base "$base")
	echo
	echo "export TEMPORAL_ADDRESS=$(address)"
}

stop() {
	local pids
	pids="$(running | awk '{print $1}')"
	if [ -z "$pids" ]; then
		echo "temporal-cluster: not running"
		return
	fi
	# shellcheck disable=SC2086
	kill -TERM $pids 2>/dev/null || true
	for _ in $(seq 1 60); do
		[ -z "$(running)" ] && break
		sleep 0.5
	done
	pids="$(running | awk '{print $1}')"
	# shellcheck disable=SC2086
	[ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
	rm -f "$dir/pids"
	echo "temporal-cluster: stopped (databases $databases, ${databases}_vis kept)"
}

status() {
	local r
	r="$(running)"
	if [ -z "$r" ]; then
		echo "temporal-cluster: not running"
		return
	fi
	echo "$r" | while read -r pid name; do echo "  $name (pid $pid), log $dir/$name.log"; done
	echo "TEMPORAL_ADDRESS=$(address)"
}

reset() {
	stop
	[ -x "$sqltool" ] || die "$sqltool not found: run make temporal-server"
	for db in "$databases" "${databases}_vis"; do
		"$sqltool" --endpoint "${pg%:*}" --port "${pg##*:}" --user postgres --plugin postgres12 --database "$db" \
			drop-database --defaultdb postgres -f >/dev/null 2>&1 || true
	done
	rm -rf "$dir"
	echo "temporal-cluster: databases dropped, $dir removed"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
reset) reset ;;
*) die "usage: $0 start|stop|status|reset" ;;
esac
