# Two commands on a fresh machine: `make demo` (the CPU demonstration) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch is installed first and pinned, so that pip does not pick another build while resolving the
# rest. Which build `torch==2.13.0` is depends on the index: on the public PyPI it is the CUDA build
# on Linux (GPU users want that). On a CPU-only machine, ask for the small CPU build:
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
TORCH_FROM := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)

.PHONY: install demo arena test test-fast lint bench smoke clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0 $(TORCH_FROM)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: install
	$(PY) scripts/demo.py

arena: install
	$(PY) scripts/arena.py

test: install
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest -q

test-fast: install
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest -q -m "not slow"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

smoke: install
	$(VENV)/bin/accelerate launch --config_file accelerate_configs/cpu.yaml scripts/train.py \
		--config recipes/smoke/real_toy.yaml --output_dir outputs/smoke --overwrite_output_dir true

bench: install
	$(PY) bench/trainer_overhead.py
	$(PY) bench/reward_throughput.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
