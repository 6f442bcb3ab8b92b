#!/usr/bin/env bash
# The one-command demo (`make demo`): a Temporal dev server with its Web UI,
# the worker with both services on SQLite, and a mix of sagas driven by the
# starter CLI. Ctrl-C stops everything. DEMO_KEEP_RUNNING=0 (the default when
# stdin is not a terminal) exits after the summary instead of waiting.
set -euo pipefail
cd "$(dirname "$0")/../.."

export AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}"
export TEMPORAL_ADDRESS="${TEMPORAL_ADDRESS:-127.0.0.1:7233}"
export TEMPORAL_NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
export TEMPORAL_UI_URL="${TEMPORAL_UI_URL:-http://localhost:8233}"
codec_addr="${SAGAFLOW_CODEC_LISTEN:-127.0.0.1:8081}"
data=".data/demo"
if [ -t 0 ]; then keep="${DEMO_KEEP_RUNNING:-1}"; else keep="${DEMO_KEEP_RUNNING:-0}"; fi

pids=()
cleanup() {
	trap - INT TERM EXIT
	if [ "${#pids[@]}" -gt 0 ]; then
		echo
		echo "stopping the worker and the Temporal dev server"
		for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
			kill -TERM "${pids[i]}" 2>/dev/null || true
			wait "${pids[i]}" 2>/dev/null || true
		done
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

host="${TEMPORAL_ADDRESS%:*}"
port="${TEMPORAL_ADDRESS##*:}"
answers() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

make --no-print-directory temporal
bash internal/scripts/ensure-rabbitmq.sh "$AMQP_URL"
mkdir -p bin "$data"
rm -f "$data"/*.db "$data"/*.db-wal "$data"/*.db-shm "$data"/*.log
echo "building the worker and the starter CLI"
go build -o bin/worker ./worker
go build -o bin/starter ./starter

# Payloads are encrypted, as in production: a fresh key unless
# SAGAFLOW_CODEC_KEYS names a key file already.
if [ -z "${SAGAFLOW_CODEC_KEYS:-}" ]; then
	export SAGAFLOW_CODEC_KEYS="$data/codec.keys"
	(umask 077 && echo "demo-$(date +%Y%m%d%H%M%S):$(head -c 32 /dev/urandom | base64 | tr -d '\n')" >"$SAGAFLOW_CODEC_KEYS")
fi
ui_origins="$TEMPORAL_UI_URL,http://127.0.0.1:${TEMPORAL_UI_URL##*:}"
echo "starting the codec server on $codec_addr (keys in $SAGAFLOW_CODEC_KEYS)"
./bin/starter codec-server --listen "$codec_addr" --ui-origin "$ui_origins" >"$data/codec-server.log" 2>&1 &
pids+=($!)

attrs=(SagaStatus OrderId CustomerId)
if answers "$host" "$port"; then
	echo "using the Temporal server already at $TEMPORAL_ADDRESS (its Web UI decodes payloads only if started with --ui-codec-endpoint http://$codec_addr)"
	for a in "${attrs[@]}"; do
		./bin/temporal operator search-attribute list --address "$TEMPORAL_ADDRESS" --namespace "$TEMPORAL_NAMESPACE" 2>/dev/null | grep -qw "$a" ||
			./bin/temporal operator search-attribute create --address "$TEMPORAL_ADDRESS" --namespace "$TEMPORAL_NAMESPACE" --name "$a" --type Keyword >/dev/null
	done
else
	echo "starting the Temporal dev server (gRPC $TEMPORAL_ADDRESS, Web UI $TEMPORAL_UI_URL)"
	# One task queue partition, and the history service reading its
	# transfer queue up to 1,000 times a second instead of 20: a lone saga
	# then takes about 0.1 s instead of 1.2 s (docs/BENCHMARKS.md). Worker
	# Deployments on, and an old build reported drained seconds (not
	# minutes) after its last pinned saga ended.
	args=(server start-dev --ip "$host" --port "$port" --ui-port "${TEMPORAL_UI_URL##*:}" --namespace "$TEMPORAL_NAMESPACE" --log-level warn
		--dynamic-config-value matching.numTaskqueueReadPartitions=1 --dynamic-config-value matching.numTaskqueueWritePartitions=1
		--dynamic-config-value history.transferProcessorMaxPollRPS=1000
		--dynamic-config-value system.enableDeploymentVersions=true --dynamic-config-value frontend.workerVersioningWorkflowAPIs=true
		--dynamic-config-value 'matching.wv.VersionDrainageStatusVisibilityGracePeriod="5s"'
		--dynamic-config-value 'matching.wv.VersionDrainageStatusRefreshInterval="5s"'
		--ui-codec-endpoint "http://$codec_addr")
	for a in "${attrs[@]}"; do args+=(--search-attribute "$a=Keyword"); done
	./bin/temporal "${args[@]}" >"$data/temporal.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 1 60); do
		./bin/temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1 && break
		sleep 1
	done
	./bin/temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null || {
		echo "the Temporal dev server did not start; see $data/temporal.log" >&2
		exit 1
	}
fi

# The worker runs under Worker Versioning, as a build of the deployment
# "sagaflow" (the Web UI's Workers and Deployments pages show it): its build
# id is the checkout's commit, with -dirty for uncommitted changes.
export TEMPORAL_DEPLOYMENT_NAME="${TEMPORAL_DEPLOYMENT_NAME-sagaflow}"
if [ -z "${TEMPORAL_BUILD_ID:-}" ]; then
	TEMPORAL_BUILD_ID="$(git describe --always --dirty 2>/dev/null || echo dev)"
fi
export TEMPORAL_BUILD_ID
echo "starting the worker, build $TEMPORAL_BUILD_ID of deployment ${TEMPORAL_DEPLOYMENT_NAME:-(unversioned)} (logs in $data/worker.log)"
metrics_addr="${METRICS_ADDR:-127.0.0.1:9090}"
LEDGER_DSN="$data/ledger.db" INVENTORY_DSN="$data/inventory.db" ORDERS_DSN="$data/orders.db" \
	METRICS_ADDR="$metrics_addr" LOG_FORMAT=json \
	./bin/worker >"$data/worker.log" 2>&1 &
pids+=($!)

if [ -n "$TEMPORAL_DEPLOYMENT_NAME" ]; then
	# A server kept from an earlier demo may have another build current:
	# this one takes the new sagas, as a deploy would make it.
	for _ in $(seq 1 60); do
		./bin/worker healthcheck --url "http://$metrics_addr/healthz" >/dev/null 2>&1 && break
		kill -0 "${pids[-1]}" 2>/dev/null || { echo "the worker stopped; see $data/worker.log" >&2; exit 1; }
		sleep 1
	done
	./bin/temporal worker deployment set-current-version --address "$TEMPORAL_ADDRESS" --namespace "$TEMPORAL_NAMESPACE" \
		--deployment-name "$TEMPORAL_DEPLOYMENT_NAME" --build-id "$TEMPORAL_BUILD_ID" --yes >/dev/null
fi

./bin/starter demo --worker-health "http://$metrics_addr/healthz"

if [ "$keep" = "1" ]; then
	echo
	echo "Everything keeps running: open $TEMPORAL_UI_URL, try ./bin/starter --help. Ctrl-C stops it all."
	wait "${pids[@]}"
fi
