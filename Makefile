# Two commands: `make reproduce` (tiny tier on this CPU) and `make test`.
# Both create .venv if missing and install the pinned CPU stack into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
# On a Linux machine without a local CPU wheel of torch, add TORCH_INDEX=https://download.pytorch.org/whl/cpu
# to avoid the multi-GB CUDA build (it would work too, only bigger).
TORCH_INDEX ?=
CONFIG ?= config/config.yaml
CORES  ?= all
export PATH := $(BIN):$(PATH)

.PHONY: install reproduce test test-fast lint dry-run clean-work verify gpu-smoke

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/python -m benchmarks.math.fastgen  # build the fused C++ decode loop once (falls back if it cannot)
	touch $@

install: $(VENV)/.installed

reproduce: install
	$(BIN)/snakemake reproduce_all --cores $(CORES) --configfile $(CONFIG)

# Re-run the nano stage from scratch (in work/verify-<tier>) and print each metric's difference from the
# committed results/<tier>/latest/nano.csv: the cross-machine spread of "the same seed".
verify: install
	$(BIN)/python -m repro.verify --config $(CONFIG) --record true

# The paper tier's GPU code paths in minutes on one GPU (skips with a message without CUDA).
gpu-smoke: install
	$(BIN)/python -m repro.gpu_smoke

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/snakemake --lint

dry-run: install
	for c in config/config.yaml config/ci.yaml config/paper.yaml; do $(BIN)/snakemake reproduce_all -n --quiet rules --configfile $$c || exit 1; done

clean-work:
	rm -rf work/ .snakemake/
