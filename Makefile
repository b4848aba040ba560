# fnbox — the two commands a new user needs are `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
ADDR ?= 127.0.0.1:8080
DATA_DIR ?= data

.PHONY: setup build run test test-rust test-runtimes test-examples bench clean-sandboxes

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
test: setup test-runtimes test-examples test-rust

test-runtimes:
	@echo "==> bootstrap protocol tests (python3, node)"
	@python3 -m unittest discover -s runtimes/tests

test-examples:
	@echo "==> example handlers"
	@python3 -m unittest discover -s examples

test-rust:
	@echo "==> cargo tests (unit + integration against dockerd, runc and runsc)"
	@$(CARGO) test --workspace --locked -- --test-threads=4
