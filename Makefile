# Set-up and everyday commands. Every target creates .venv and installs what it needs on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# a CPU-only torch wheel; a plain `pip install torch` would pull several GB of CUDA packages
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test lint bench install install-test clean zoo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first, and only when none is importable, so the package's "torch>=2.4" is already satisfied
$(VENV)/.torch: | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.torch
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: $(VENV)/.installed
	$(BIN)/lstmvision demo

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks scripts tools
	$(BIN)/ruff format --check src tests benchmarks scripts tools
	$(BIN)/mypy src

test: lint
	KERAS_BACKEND=torch $(BIN)/python -m pytest tests

# train a model zoo entry into src/lstmvision/zoo (docs/zoo.md): make zoo ENTRY=convlstm_demo
zoo: $(VENV)/.installed
	$(BIN)/python tools/train_zoo.py $(if $(ENTRY),$(ENTRY),--all)

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/precision.py
	$(BIN)/python benchmarks/breakdown.py --models demo,convlstm_s,predrnn,e3d
	$(BIN)/python benchmarks/weight_grads.py
	$(BIN)/python benchmarks/convlstm.py
	$(BIN)/python benchmarks/e3d_predrnn.py
	$(BIN)/python benchmarks/time_distributed.py
	$(BIN)/python benchmarks/video_loader.py
	$(BIN)/python benchmarks/mplstm.py
	$(BIN)/python benchmarks/beam_search.py

clean:
	rm -rf runs lightning_logs .pytest_cache .ruff_cache .mypy_cache
