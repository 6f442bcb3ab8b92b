# The project's commands. `make demo` runs the sagas end to end; `make test`
# runs every test. Both install what they need (the pinned Temporal CLI) and
# use the RabbitMQ at AMQP_URL, starting a locally installed one if needed.

SHELL := /bin/bash
GO ?= go
TEMPORAL_CLI_VERSION := v1.5.1
BIN := $(CURDIR)/bin
TEMPORAL := $(BIN)/temporal
AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/
TEST_TIMEOUT ?= 40m
FAULTS_TIMEOUT ?= 25m

export PATH := $(BIN):$(PATH)

.PHONY: demo test faults unit temporal rabbitmq cluster cluster-stop bench soak fmt vet

## demo: the sagas end to end on a Temporal dev server with its Web UI (Ctrl-C stops it)
demo:
	@bash internal/scripts/demo.sh

## test: every test, race detector on (needs RabbitMQ and PostgreSQL; installs the Temporal CLI)
test: temporal rabbitmq
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) --no-print-directory faults

## faults: the fault suite alone (build tag faults), verbose so its table shows: it restarts the broker, which disturbs every other broker client
faults: temporal rabbitmq
	$(GO) test -race -count=1 -tags faults -p 1 -v -timeout $(FAULTS_TIMEOUT) ./internal/faulttest/

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

## rabbitmq: make sure a broker answers at AMQP_URL, starting a local rabbitmq-server if installed
rabbitmq:
	@bash internal/scripts/ensure-rabbitmq.sh "$(AMQP_URL)"

## cluster: a local 3-node RabbitMQ cluster beside the broker at :5672: sagaflow1..3@localhost on 127.0.0.1:5681-5683 (distribution 25681-25683), data in .data/cluster; prints the AMQP_URL to use
cluster:
	@bash internal/scripts/cluster.sh start

## cluster-stop: stop the nodes of `make cluster` (their data stays in .data/cluster)
cluster-stop:
	@bash internal/scripts/cluster.sh stop

## bench: the saga, publisher, ledger and codec benchmarks, written to docs/BENCHMARKS.md (with BENCH_FLAGS="--variants=false" about half an hour on a 2-core host, the variants add as many rows again; BENCH_FLAGS="--sagas 100 --concurrency 20 --repeats 1" for a quick run)
bench: temporal rabbitmq
	$(GO) run ./internal/bench --amqp-url "$(AMQP_URL)" --command "make bench$(if $(BENCH_FLAGS), BENCH_FLAGS='$(BENCH_FLAGS)')" $(BENCH_FLAGS)

## soak: 20000 sagas (transfers and orders, 10% failing) at 7/s through one worker (about 50 minutes), its memory, goroutines, file descriptors, tables and queues written to docs/SOAK.md (SOAK_FLAGS="--sagas 200 --rate 20 --retention 20s --sample-every 10s" for a quick run; `go run ./internal/bench soak --help` lists the flags)
soak: temporal rabbitmq
	$(GO) run ./internal/bench soak --amqp-url "$(AMQP_URL)" --command "make soak$(if $(SOAK_FLAGS), SOAK_FLAGS='$(SOAK_FLAGS)')" $(SOAK_FLAGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...
