# The project's commands. `make demo` runs the sagas end to end; `make test`
# runs every test. Both install what they need (the pinned Temporal CLI) and
# use the RabbitMQ at AMQP_URL, starting a locally installed one if needed.

SHELL := /bin/bash
GO ?= go
TEMPORAL_CLI_VERSION := v1.5.1
BIN := $(CURDIR)/bin
TEMPORAL := $(BIN)/temporal
# The self-hosted Temporal server: pinned in tools/temporal-server/go.mod, a
# module of its own so that the project's go.mod never requires it.
TEMPORAL_SERVER := $(BIN)/temporal-server
TEMPORAL_SQL_TOOL := $(BIN)/temporal-sql-tool
TEMPORAL_SERVER_MODULE := tools/temporal-server
AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/
TEST_TIMEOUT ?= 40m
FAULTS_TIMEOUT ?= 35m

export PATH := $(BIN):$(PATH)

.PHONY: demo test test-temporal-cluster faults faults-temporal-cluster unit temporal temporal-server temporal-cluster temporal-cluster-stop rabbitmq cluster cluster-stop bench soak fmt vet

## demo: the sagas end to end on a Temporal dev server with its Web UI (Ctrl-C stops it)
demo:
	@bash internal/scripts/demo.sh

## test: every test, race detector on (needs RabbitMQ and PostgreSQL; installs the Temporal CLI and builds the Temporal server)
test: temporal temporal-server rabbitmq
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) --no-print-directory test-temporal-cluster
	$(MAKE) --no-print-directory faults
	$(MAKE) --no-print-directory faults-temporal-cluster

# The system tests that run a second time on a self-hosted Temporal: transfers,
# the order storm, orders, cancels, the reservation's time-to-live, SagaStatus
# queries on PostgreSQL visibility, the audit trail.
TEMPORAL_CLUSTER_TESTS := ^(TestDevServerRunsWorkflow|TestSearchAttributesRegistered|TestTransferThroughWorkerProcess|TestOrderStorm|TestOrderLiveRunReplaysCancelsAndOperators|TestReservationLiveRunReplaysExpiryAndRefusal|TestOperatorActionsByIDAndByQuery|TestCLIAgainstTheLiveSystem)$$
TEMPORAL_CLUSTER_PACKAGES := ./internal/temporaltest/ ./internal/systemtest/ ./workflows/ ./starter/

## test-temporal-cluster: the system tests on a self-hosted Temporal (TEMPORAL_TARGET=cluster: frontend, matching, worker and two history hosts on PostgreSQL, one per test binary) instead of the dev server
test-temporal-cluster: temporal temporal-server rabbitmq
	TEMPORAL_TARGET=cluster $(GO) test -race -count=1 -p 1 -timeout $(TEST_TIMEOUT) -run '$(TEMPORAL_CLUSTER_TESTS)' $(TEMPORAL_CLUSTER_PACKAGES)

## faults: the fault suite alone (build tag faults), verbose so its table shows: it restarts the broker and PostgreSQL, which disturbs every other client of them (the self-hosted Temporal's faults run with `make faults-temporal-cluster`)
faults: temporal rabbitmq
	$(GO) test -race -count=1 -tags faults -p 1 -v -timeout $(FAULTS_TIMEOUT) -skip '^TestTemporalCluster$$' ./internal/faulttest/

## faults-temporal-cluster: the fault suite's faults of a self-hosted Temporal (a history host killed, the frontend, matching and PostgreSQL restarted; PostgreSQL's restart disturbs its every other client)
faults-temporal-cluster: temporal temporal-server rabbitmq
	$(GO) test -race -count=1 -tags faults -p 1 -v -timeout $(FAULTS_TIMEOUT) -run '^TestTemporalCluster$$' ./internal/faulttest/

## unit: the quick tests: -short skips the end-to-end, load and browser tests
unit:
	$(GO) test -race -count=1 -short ./...

## temporal: install the pinned Temporal CLI (dev server + Web UI) into ./bin
temporal: $(TEMPORAL)

$(TEMPORAL):
	@mkdir -p $(BIN)
	@gobin_cli="$$($(GO) env GOPATH)/bin/temporal"; \
	if [ -x "$$gobin_cli" ] && "$$gobin_cli" --version 2>/dev/null | grep -q "$(TEMPORAL_CLI_VERSION:v%=%)"; then \
		echo "reusing $$gobin_cli"; ln -sf "$$gobin_cli" $(TEMPORAL); \
	else \
		echo "installing the Temporal CLI $(TEMPORAL_CLI_VERSION) into ./bin (a few minutes, once)"; \
		GOBIN=$(BIN) $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_CLI_VERSION); \
	fi

## temporal-server: build the pinned self-hosted Temporal server (go.temporal.io/server, see tools/temporal-server/go.mod) and its SQL schema tool into ./bin (minutes from a cold cache, once)
temporal-server: $(TEMPORAL_SERVER) $(TEMPORAL_SQL_TOOL)

$(TEMPORAL_SERVER) $(TEMPORAL_SQL_TOOL) &: $(TEMPORAL_SERVER_MODULE)/go.mod $(TEMPORAL_SERVER_MODULE)/go.sum
	@mkdir -p $(BIN)
	@echo "building $$(grep -m1 'go.temporal.io/server ' $(TEMPORAL_SERVER_MODULE)/go.mod | xargs) into ./bin (minutes from a cold cache, once)"
	cd $(TEMPORAL_SERVER_MODULE) && $(GO) build -o $(TEMPORAL_SERVER) go.temporal.io/server/cmd/server
	cd $(TEMPORAL_SERVER_MODULE) && $(GO) build -o $(TEMPORAL_SQL_TOOL) go.temporal.io/server/cmd/tools/sql

## temporal-cluster: a self-hosted Temporal on the local PostgreSQL (frontend, matching, worker and two history hosts as separate processes, on 127.0.0.1 from port 27200 up), data in .data/temporal-cluster; prints the TEMPORAL_ADDRESS to use
temporal-cluster: temporal-server
	@bash internal/scripts/temporal-cluster.sh start

## temporal-cluster-stop: stop the processes of `make temporal-cluster` (its databases stay; `internal/scripts/temporal-cluster.sh reset` drops them)
temporal-cluster-stop:
	@bash internal/scripts/temporal-cluster.sh stop

## rabbitmq: make sure a broker answers at AMQP_URL, starting a local rabbitmq-server if installed
rabbitmq:
	@bash internal/scripts/ensure-rabbitmq.sh "$(AMQP_URL)"

## cluster: a local 3-node RabbitMQ cluster beside the broker at :5672: sagaflow1..3@localhost on 127.0.0.1:5681-5683 (distribution 25681-25683), data in .data/cluster; prints the AMQP_URL to use
cluster:
	@bash internal/scripts/cluster.sh start

## cluster-stop: stop the nodes of `make cluster` (their data stays in .data/cluster)
cluster-stop:
	@bash internal/scripts/cluster.sh stop

## bench: the saga, publisher, ledger and codec benchmarks, written to docs/BENCHMARKS.md (builds the self-hosted Temporal server for its row; with BENCH_FLAGS="--variants=false" about 45 minutes on a 2-core host, the variants add as many rows again; BENCH_FLAGS="--sagas 100 --concurrency 20 --repeats 1" for a quick run)
bench: temporal temporal-server rabbitmq
	$(GO) run ./internal/bench --amqp-url "$(AMQP_URL)" --command "make bench$(if $(BENCH_FLAGS), BENCH_FLAGS='$(BENCH_FLAGS)')" $(BENCH_FLAGS)

## soak: 20000 sagas (transfers and orders, 10% failing) at 7/s through one worker (about 50 minutes), its memory, goroutines, file descriptors, tables and queues written to docs/SOAK.md (SOAK_FLAGS="--sagas 200 --rate 20 --retention 20s --sample-every 10s" for a quick run; `go run ./internal/bench soak --help` lists the flags)
soak: temporal rabbitmq
	$(GO) run ./internal/bench soak --amqp-url "$(AMQP_URL)" --command "make soak$(if $(SOAK_FLAGS), SOAK_FLAGS='$(SOAK_FLAGS)')" $(SOAK_FLAGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...
