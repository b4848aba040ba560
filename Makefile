# fnbox — the two commands a new user needs are `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
ADDR ?= 127.0.0.1:8080
DATA_DIR ?= data

.PHONY: setup build run test test-deps test-rust test-runtimes test-examples bench soak ui-vendor cluster cluster-down

## setup: install what is missing (docker.io, runsc, mmdebstrap), start dockerd, build images and the binary
setup:
	@bash scripts/setup.sh
	@$(MAKE) --no-print-directory build

build:
	@echo "==> building fnbox (release)"
	@$(CARGO) build --release --locked --bin fnbox

## run: setup, then serve the API and web UI on http://$(ADDR)
run: setup
	@echo "==> starting fnbox on http://$(ADDR) (data in $(DATA_DIR)/)"
	@./target/release/fnbox serve --addr $(ADDR) --data-dir $(DATA_DIR)

## test: setup, then the whole suite against real dockerd with runc and runsc
test: setup test-deps test-runtimes test-examples test-rust

test-deps:
	@bash scripts/test-deps.sh

test-runtimes:
	@echo "==> bootstrap protocol tests (python3, node)"
	@python3 -m unittest discover -s runtimes/tests

test-examples:
	@echo "==> example handlers"
	@python3 -m unittest discover -s examples

# Release profile: reuses what `make setup` built instead of compiling everything twice.
test-rust:
	@echo "==> cargo tests (unit + integration against dockerd, runc and runsc)"
	@$(CARGO) test --release --workspace --locked -- --test-threads=4

## ui-vendor: refresh ui/vendor from npm, as pinned by ui/package-lock.json (not needed to build or run)
ui-vendor:
	@cd ui && npm ci --no-audit --no-fund
	@cp ui/node_modules/uplot/dist/uPlot.iife.min.js ui/node_modules/uplot/dist/uPlot.min.css ui/node_modules/codejar/dist/codejar.js ui/vendor/
	@for c in core clike python javascript json; do cp ui/node_modules/prismjs/components/prism-$$c.min.js ui/vendor/; done
	@echo "ui/vendor refreshed"

## bench: latency, throughput and memory per sandbox vs `docker run`, then a three-node cluster section (BENCH_ARGS=--quick for a short run, --no-cluster to skip the cluster, --only-cluster for it alone)
bench: setup
	@$(CARGO) build --release --locked -p fnbox-bench
	@./target/release/fnbox-bench $(BENCH_ARGS)

## soak: SOAK_SECONDS (default 600) of mixed functions and failures; fnbox's RSS and open files must stay flat
SOAK_SECONDS ?= 600
soak: setup
	@$(CARGO) build --release --locked -p fnbox-bench
	@./target/release/fnbox-bench --soak $(SOAK_SECONDS) $(SOAK_ARGS)

## cluster: a local cluster of 3 fnbox nodes (a network namespace + dockerd each) on PostgreSQL and a
## 3-server NATS JetStream cluster; state, logs and the nodes' URLs in $(CLUSTER_DIR)/ (make setup first only
## when the fnbox binary or an image is missing)
CLUSTER_DIR ?= target/cluster
cluster:
	@if [[ ! -x target/release/fnbox ]] || ! docker image inspect fnbox-python:latest fnbox-node:latest >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory setup; \
	fi
	@CLUSTER_DIR=$(CLUSTER_DIR) bash scripts/cluster.sh up

## cluster-down: stop everything `make cluster` started and remove its network (data stays in $(CLUSTER_DIR)/)
cluster-down:
	@CLUSTER_DIR=$(CLUSTER_DIR) bash scripts/cluster.sh down
