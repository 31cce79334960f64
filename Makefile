# The two commands a new user needs: `make demo` (main job on built-in data) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: setup demo test lint

setup: $(VENV)/.installed

# torch is installed first and pinned so that pip takes the CPU build on this disk
# instead of pulling a multi-GB CUDA build as a dependency of the package.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,ray,serve]'
	touch $@

demo: setup
	$(VENV)/bin/metamed demo --out runs/demo

test: setup
	$(PY) -m pytest -q

# ruff (style, imports, likely bugs), the layering contract (lint-imports, also run by
# tests/test_layers.py) and mypy (types over src/); settings in pyproject.toml.
lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/lint-imports
	$(PY) -m mypy
