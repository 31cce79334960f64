# The two commands a new user needs: `make demo` (main job on built-in data) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

# Which PyTorch build to install, the one choice an install makes (README, "Install"):
#   TORCH=cpu  (default) the CPU-only build from PyTorch's CPU wheel index: about 200 MB,
#              works on any Linux x86-64 or aarch64 machine, no GPU needed.
#   TORCH=gpu  PyPI's ordinary build, which on Linux bundles CUDA (several GB of wheels).
# With TORCH=cpu a CPU wheel already on this machine's disk (pip's find-links) is used
# first, without asking any index; only when there is none does pip download one.
TORCH ?= cpu
TORCH_VERSION ?= 2.13.0
TORCH_INDEX_cpu := --index-url https://download.pytorch.org/whl/cpu
TORCH_INDEX_gpu :=
ifeq ($(filter cpu gpu,$(TORCH)),)
$(error TORCH must be cpu or gpu, got '$(TORCH)'; e.g. make setup TORCH=cpu)
endif

.PHONY: setup demo test lint

setup: $(VENV)/.installed

# torch goes in first, pinned and from the chosen index: installed as a dependency of the
# package, pip would take PyPI's CUDA build on Linux.  Switching TORCH needs a new venv
# (rm -rf $(VENV)): pip keeps a torch that already satisfies the pin.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(if $(filter cpu,$(TORCH)),$(PY) -m pip install -q --no-index --no-deps \
	  torch==$(TORCH_VERSION)+cpu 2>/dev/null ||) \
	  $(PY) -m pip install -q $(TORCH_INDEX_$(TORCH)) torch==$(TORCH_VERSION)
	$(PY) -m pip install -q -e '.[dev,ray,serve,chem]'
	$(PY) -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda or 'none (CPU only)')"
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
