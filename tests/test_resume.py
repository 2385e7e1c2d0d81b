"""Exact resume: a REAL run interrupted at a checkpoint and resumed ends with the parameters of the run that
was never interrupted, with SGD and AdamW, deterministic rollouts and sampled generations, on one process
and on two (gloo). The checkpoints sit at generation-batch boundaries in the first and the second epoch, so
the optimizer, the scheduler, the RNGs (generation), the sampler's order and the group plan must all be
restored. A save_steps inside a generation batch is refused when the config is built.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from resume_worker import RESUME_STEPS, run_case
from safetensors.torch import load_file

from real_trl import REALConfig

from helpers import free_port

WORKER = Path(__file__).with_name("resume_worker.py")
CASES = [("sgd", "rollout"), ("adamw", "rollout"), ("sgd", "sample"), ("adamw", "sample")]


def _assert_resumed_like_uninterrupted(results: dict, run_dir: Path) -> None:
    full = results["full"]
    for step in RESUME_STEPS:
        at_checkpoint = load_file(run_dir / "full" / f"checkpoint-{step}" / "model.safetensors")
        change = max((full["parameters"][name] - value).abs().max().item() for name, value in at_checkpoint.items())
        assert change > 1e-4, f"no training after step {step}: the comparison would be vacuous"
        resumed = results[f"resumed_from_{step}"]
        # the resumed log history starts with the checkpoint's copy of the steps before it
        expected_losses = {s: loss for s, loss in full["losses"].items() if s > step}
        resumed_losses = {s: loss for s, loss in resumed["losses"].items() if s > step}
        assert resumed_losses == pytest.approx(expected_losses, rel=1e-5, abs=1e-7), (
            f"resumed at step {step}: later losses differ (other prompts, completions or optimizer state)"
        )
        for name, expected in full["parameters"].items():
            torch.testing.assert_close(resumed["parameters"][name], expected, rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize("optimizer,generation", CASES)
def test_resumed_run_matches_uninterrupted_run(tmp_path, optimizer, generation):
    _assert_resumed_like_uninterrupted(run_case(tmp_path, optimizer, generation), tmp_path)


@pytest.mark.slow
def test_resumed_run_matches_uninterrupted_run_on_two_processes(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", TRL_EXPERIMENTAL_SILENCE="1")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
    ]
    cases = [f"{optimizer}:{generation}" for optimizer, generation in CASES]
    result = subprocess.run(
        [*launcher, str(WORKER), str(tmp_path), *cases], check=False, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    for case in cases:
        name = case.replace(":", "_")
        _assert_resumed_like_uninterrupted(torch.load(tmp_path / f"{name}.pt"), tmp_path / name)


def test_save_steps_inside_a_generation_batch_is_refused(tmp_path):
    # 4 micro-steps per generation batch, 2 per optimizer step: checkpoints every 2 optimizer steps only
    with pytest.raises(ValueError, match=r"save_steps .* multiple of the 2 optimizer steps"):
        REALConfig(
            output_dir=str(tmp_path),
            per_device_train_batch_size=4,
            num_generations=4,
            gradient_accumulation_steps=2,
            steps_per_generation=4,
            save_strategy="steps",
            save_steps=3,
            use_cpu=True,
            report_to=[],
        )
