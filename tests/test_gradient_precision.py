"""The dtype each engine reduces and accumulates gradients in, measured on CPU under the shipped configs.

The official runs reduce-scatter every micro-step's gradient in float32 into float32 shards. Two CPU
processes (gloo) train one optimizer step of 4 micro-steps with bf16 on, as the recipes do, and a probe
parameter reads the reduced, accumulated gradient exactly (tests/gradient_probe_worker.py):

- DeepSpeed ZeRO-2 and ZeRO-3 under accelerate_configs/zero2.yaml and zero3.yaml, whose DeepSpeed config files
  set `communication_data_type` and `data_types.grad_accum_dtype` to fp32 (DeepSpeed's defaults are bf16);
- FSDP2 under accelerate_configs/fsdp2.yaml, with accelerate's own policy (bf16 reduction: the control that
  shows the probe sees bf16) and after `reduce_fsdp2_gradients_in_float32`, as the launcher calls it.

accelerate turns FSDP on only for accelerators; the worker lifts that gate (helpers.allow_fsdp_on_cpu, as
tests/exactness_worker.py does) and builds the mixed-precision policy a GPU run gets, which the lifted CPU
path skips.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from real_trl.launch.engine import decide_precision, engine_from_accelerate_config, gradient_precision

from helpers import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("gradient_probe_worker.py")
CASES = {"zero2": ["deepspeed"], "zero3": ["deepspeed"], "fsdp2": ["fsdp2_accelerate", "fsdp2_launcher"]}
FLOAT32_ACCUMULATION = 1 + 3 * 2.0**-9  # the probe's "accumulated" element over its "unit" one
FLOAT32_REDUCTION = (1 + 2.0**-8) / 2  # its "reduced" element


def _launch(config: str, out: Path) -> dict[str, dict]:
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", f"accelerate_configs/{config}.yaml",
        "--num_processes", "2", "--main_process_port", str(free_port()), str(WORKER), str(out), *CASES[config],
    ]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return {case: json.loads((out / f"{case}.json").read_text()) for case in CASES[config]}


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    cache = {}

    def run(config: str) -> dict[str, dict]:
        if config not in cache:
            cache[config] = _launch(config, tmp_path_factory.mktemp(config))
        return cache[config]

    return run


def _read(result: dict) -> tuple[float, float]:
    """The probe's accumulated and reduced elements, against its unit element."""
    unit, accumulated, reduced = result["master"]
    assert unit > 0, result
    return accumulated / unit, reduced / unit


def test_the_probe_tells_bfloat16_from_float32():
    one = torch.tensor(1.0, dtype=torch.bfloat16)
    assert one + 2.0**-9 == one and (one + 2.0**-8) / 2 == 0.5  # what bf16 accumulation / reduction gives
    assert FLOAT32_ACCUMULATION != 1.0 and FLOAT32_REDUCTION != 0.5


@pytest.mark.parametrize("config, stage", [("zero2", 2), ("zero3", 3)])
def test_shipped_deepspeed_configs_reduce_and_accumulate_in_float32(measured, config, stage):
    pytest.importorskip("deepspeed")
    result = measured(config)["deepspeed"]
    facts = result["engine"]
    assert facts["bf16_enabled"] and facts["model_dtype"] == "torch.bfloat16", facts  # bf16 really was on
    assert facts["zero_stage"] == stage, facts
    assert (facts["communication_dtype"], facts["grad_accum_dtype"]) == ("torch.float32", "torch.float32"), facts
    assert _read(result) == (FLOAT32_ACCUMULATION, FLOAT32_REDUCTION)
    # The plan says what was measured.
    engine = engine_from_accelerate_config(f"accelerate_configs/{config}.yaml")
    planned = gradient_precision(engine, decide_precision(engine, "bfloat16", True))
    assert (planned.reduce_dtype, planned.accumulate_dtype) == ("float32", "float32")


def test_fsdp2_reduces_in_bfloat16_until_the_launcher_raises_it_to_float32(measured):
    results = measured("fsdp2")
    accelerate, launcher = results["fsdp2_accelerate"], results["fsdp2_launcher"]
    for result in results.values():
        facts = result["engine"]
        assert facts["fsdp2"] and facts["sharded"] and facts["param_dtype"] == "torch.bfloat16", facts
    # accelerate's policy: bf16 reduction, and bf16 accumulation of the unsharded gradients under no_sync
    assert accelerate["engine"]["reduce_dtype"] == "torch.bfloat16" and not accelerate["engine"]["sync_each_batch"]
    assert _read(accelerate) == (1.0, 0.5)
    # the launcher's change: float32 reduce-scatter after every micro-step into float32 shards
    assert launcher["engine"]["reduce_dtype"] == "torch.float32" and launcher["engine"]["sync_each_batch"]
    assert _read(launcher) == (FLOAT32_ACCUMULATION, FLOAT32_REDUCTION)
    engine = engine_from_accelerate_config("accelerate_configs/fsdp2.yaml")
    assert gradient_precision(engine, decide_precision(engine, "bfloat16", True)).float32
