# Two commands do all set-up: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The CPU build of torch must be installed before sentence-transformers, or pip resolves the CUDA build.
TORCH_SPEC ?= torch==2.13.0

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

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(PIP) install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

run: install
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
