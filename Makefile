SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --constraint constraints.txt
STAMP := $(VENV)/.installed

.PHONY: setup lint format test test-fast demo bench bench-check mutation clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev,s2cloudless]' --config-settings editable_mode=compat
	touch $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Test files are spread over TEST_WORKERS processes, each file kept in one (its module-scoped
# Prefect servers and sample stores are started once); TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

test: lint
	$(PYTEST)

test-fast: setup
	$(PYTEST) -m "not slow"

demo: setup
	bash deployments/demo.sh

bench: setup bench-reference-setup
	$(BIN)/python -m bench

# Recorded tables older than the code they measure (informative: always exits 0).
bench-check: setup
	$(BIN)/python -m bench.check

# Mutation testing of the modules behind the core promises ([tool.mutmut] in pyproject.toml
# lists them and their tests); slow (tens of minutes on 2 cores), not part of `make test`.
mutation: setup
	rm -f mutants/mutmut-stats.json  # mutmut forgets which edited tests reach which code
	$(BIN)/mutmut run --max-children 2
	$(BIN)/python tests/mutation_report.py

# On a machine with a CUDA device: GPU peaks, training step fp32/bf16, NCHW/NHWC, compile, and
# super-resolution throughput, written into bench/RESULTS.md. Without one it measures nothing.
.PHONY: bench-gpu
bench-gpu: setup
	$(BIN)/python -m bench.gpu

# The reference implementation (opensr-srgan 0.4.3) in its own venv, for `python -m bench
# opensr:WORKLOAD` (see bench/reference_worker.py). Same torch and Lightning as ours; no
# torchvision (no CPU build here): the worker stubs the modules it only imports.
REF_VENV := bench/.venv-opensr
REF_PIP := $(REF_VENV)/bin/pip install --constraint constraints.txt

.PHONY: bench-reference-setup

bench-reference-setup: $(REF_VENV)/.installed

$(REF_VENV)/.installed: constraints.txt
	test -x $(REF_VENV)/bin/python || $(PY) -m venv $(REF_VENV)
	$(REF_PIP) --upgrade pip
	$(REF_PIP) torch==2.13.0
	$(REF_PIP) pytorch-lightning==2.6.6 torchmetrics==1.8.2 omegaconf==2.3.1 kornia==0.9.0 \
		numpy==2.4.6 pillow==13.0.0
	$(REF_PIP) opensr-srgan==0.4.3 --no-deps
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# prefect-up / prefect-down / prefect-status
include deployments/local.mk
