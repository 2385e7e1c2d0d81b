# Two commands on a fresh machine: `make demo` (the CPU demonstration) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo arena test test-fast bench smoke clean

install: $(STAMP)

# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build on a CPU machine.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: install
	$(PY) scripts/demo.py

arena: install
	$(PY) scripts/arena.py

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

smoke: install
	$(VENV)/bin/accelerate launch --config_file accelerate_configs/cpu.yaml scripts/train.py --config recipes/smoke/real_toy.yaml

bench: install
	$(PY) bench/trainer_overhead.py
	$(PY) bench/reward_throughput.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
