# flink-sync: the two commands a new machine needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIND ?= 127.0.0.1:8080
# `make test` runs the suite on this many pytest-xdist workers, one test file per worker at a time (a file's tests
# keep their order and module fixtures; each worker that reaches a sandbox test starts its own sandbox).
TEST_WORKERS ?= 2
# Flink jars are large (about 230 MB and 330 MB): cache them outside the clone.
export FLINK_SYNC_CACHE ?= $(HOME)/.cache/flink-sync

.PHONY: setup run test test-fast lint bench clean sandbox-up sandbox-down sandbox-build test-sandbox

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,lint]'
	touch $@

setup: $(VENV)/.installed

run: setup
	$(VENV)/bin/flink-sync serve --bind $(BIND)

# Installs what the tests need (JDK 17 via apt when missing, Flink jars from PyPI, the sandbox's control plane built
# from Debian's source package, cached), then runs every test, the sandbox's end-to-end tests included.
# On a fresh machine the control plane builds (about 15 CPU-minutes, niced) while the tests that need no sandbox
# run; the sandbox tests come last and wait for it (tests/conftest.py). Its log: $(CONTROL_PLANE_LOG).
CONTROL_PLANE_LOG = $(FLINK_SYNC_CACHE)/build-control-plane.log
test: setup
	scripts/ensure-java.sh
	scripts/ensure-kubectl.sh
	$(PY) scripts/fetch_flink.py --all
	@mkdir -p $(FLINK_SYNC_CACHE); \
	scripts/sandbox/build-control-plane.sh >$(CONTROL_PLANE_LOG) 2>&1 & build=$$!; \
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=20; tests=$$?; \
	if ! wait $$build; then echo "control plane build failed:"; tail -n 30 $(CONTROL_PLANE_LOG); exit 1; fi; \
	exit $$tests

# ruff (rule set in pyproject.toml), mypy (strict on sync/), and the core's import contract.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy sync hooks
	$(PY) -m pytest -q -p no:cacheprovider tests/test_import_contract.py tests/test_records.py

# Unit and service tests only (no real Flink).
test-fast: setup
	$(PY) -m pytest -q -m "not flink and not sandbox"

# BENCH_SANDBOX=1 adds the control plane at scale (bench/sandbox_scale.py: BENCH_SANDBOX_DEPLOYMENTS FlinkDeployments,
# default 1000, in a sandbox of their own with the Flink REST stub; needs the sandbox's control plane build).
BENCH_SANDBOX ?=
BENCH_SANDBOX_DEPLOYMENTS ?= 1000
bench: setup
	$(PY) -m bench
	@if [ -n "$(BENCH_SANDBOX)" ]; then scripts/sandbox/build-control-plane.sh && \
		$(PY) -m bench sandbox --deployments $(BENCH_SANDBOX_DEPLOYMENTS); fi

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

# A local Kubernetes control plane (kube-apiserver/controller-manager 1.20 built from Debian's source package, etcd)
# with flink-sync, a Metacontroller stand-in and a node agent that runs Flink pods as local JVMs: docs/sandbox.md.
sandbox-build:
	scripts/sandbox/build-control-plane.sh

sandbox-up: setup
	$(PY) -m sandbox up

sandbox-down:
	@if [ -x $(PY) ]; then $(PY) -m sandbox down; else python3 -m sandbox down; fi

# The end-to-end tests on the sandbox (they start and stop their own sandbox in a temporary directory).
test-sandbox: setup
	scripts/ensure-java.sh
	scripts/ensure-kubectl.sh
	scripts/sandbox/build-control-plane.sh
	$(PY) scripts/fetch_flink.py --all
	$(PY) -m pytest -q -m sandbox tests/sandbox
