"""The launcher: bad input stops with one line before any model is loaded; the smoke recipe runs end to end
under accelerate (one CPU process; DeepSpeed ZeRO-2/3 and FSDP2 with two) and torchrun, checkpoints and resumes."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from real_trl.launch import (
    LaunchError,
    batch_plan,
    digit_reward,
    last_checkpoint,
    load_dataset,
    make_parser,
    parse_args,
    toy_dataset,
)

ROOT = Path(__file__).resolve().parents[1]
REAL_RECIPE = ROOT / "recipes/DeepSeek-R1-Distill-Qwen-1.5B/real_deepscaler.yaml"
SMOKE = ROOT / "recipes/smoke/real_toy.yaml"
BIN = Path(sys.executable).parent


def write_recipe(tmp_path, text: str) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(SMOKE.read_text() + text)
    return str(path)


# -- bad input: one clear line, before any model is loaded ------------------------------------------


def test_unknown_recipe_field_is_named_with_a_suggestion(tmp_path):
    expected = r"unknown field\(s\) in .*recipe.yaml: learning_rat \(did you mean learning_rate\?\)"
    with pytest.raises(LaunchError, match=expected):
        parse_args(["--config", write_recipe(tmp_path, "learning_rat: 1.0e-6\n")])


def test_unknown_command_line_argument_is_named():
    with pytest.raises(LaunchError, match="unknown command-line argument.*--tua"):
        parse_args(["--config", str(SMOKE), "--tua", "0.3"])


@pytest.mark.parametrize("option", ["dataset_name", "eval_dataset_name"])
def test_unknown_dataset_name(option):
    with pytest.raises(LaunchError, match=f"unknown {option} 'deepscalr': choose one of deepscaler, dapo17k"):
        parse_args(["--config", str(SMOKE), f"--{option}", "deepscalr"])


def test_any_dataset_name_with_a_local_path(tmp_path):
    script_args, _, _ = parse_args(["--config", str(SMOKE), "--dataset_name", "mine", "--dataset_path", str(tmp_path)])
    assert (script_args.dataset_name, script_args.dataset_path) == ("mine", str(tmp_path))


def test_validation_set_loads_from_a_local_copy(shared_data):
    from real_trl.tiny import build_tiny_tokenizer

    aime = load_dataset("aime24", str(shared_data), None, build_tiny_tokenizer(), 4096, None, seed=0)
    assert len(aime) == 30 and set(aime.column_names) >= {"prompt", "answer"}
    # The byte-level tiny tokenizer makes prompts long: a tight limit drops some, as the paper's filter would.
    assert len(load_dataset("aime24", str(shared_data), None, build_tiny_tokenizer(), 300, 10, seed=0)) < 10


def test_unknown_reward_function():
    with pytest.raises(LaunchError, match="unknown reward function.*accuracy"):
        parse_args(["--config", str(SMOKE), "--reward_funcs", "math_reward", "accuracy"])


def test_validation_needs_a_validation_set(tmp_path):
    with pytest.raises(LaunchError, match="eval_dataset_name is not set"):
        parse_args(["--config", write_recipe(tmp_path, "eval_dataset_name: null\n")])


def test_batch_arithmetic_is_checked_for_the_launched_processes():
    # 4 x 3 = 12 sequences per micro-step cannot hold whole groups of 8.
    with pytest.raises(LaunchError, match="does not divide for 3 processes.*multiple of num_generations 8"):
        parse_args(["--config", str(REAL_RECIPE)], num_processes=3)


def test_config_checks_become_one_line():
    with pytest.raises(LaunchError, match=r"^tau must be > 0"):
        parse_args(["--config", str(SMOKE), "--tau", "0"])


def test_bad_recipe_stops_the_script_with_one_line(tmp_path):
    # The model path does not exist: reaching any model loading would fail differently.
    recipe = write_recipe(tmp_path, "learning_rat: 1.0e-6\n")
    missing_model = str(tmp_path / "nope")
    result = _run([sys.executable, "scripts/train.py", "--config", recipe, "--model_name_or_path", missing_model])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("error: unknown field(s)")


def test_batch_arithmetic_error_from_the_launch_environment():
    # WORLD_SIZE is what accelerate launch / torchrun export; the check runs before any process group exists.
    result = _run([sys.executable, "scripts/train.py", "--config", str(REAL_RECIPE)], WORLD_SIZE="6", RANK="0")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "does not divide for 6 processes" in result.stderr


def test_help_lists_every_field_with_help_text():
    text = make_parser().format_help()
    for field in ("--dataset_name", "--max_prompt_length", "--resume", "--tau", "--loss_type", "--lora_r", "--dtype"):
        assert field in text
    assert "Resume from the last checkpoint in output_dir" in " ".join(text.split())


# -- pieces ------------------------------------------------------------------------------------------


def test_batch_plan_matches_the_paper_on_eight_processes():
    plan = batch_plan(8, 4, 8, 8, steps_per_generation=32)
    assert (plan.prompts_per_generation, plan.completions_per_prompt) == (128, 8)
    assert (plan.prompts_per_optimizer_step, plan.optimizer_steps_per_generation) == (32, 4)
    assert "128 prompts x 8 completions" in plan.describe()


def test_batch_plan_generation_batch_size_form_and_refusals():
    assert batch_plan(8, 4, 8, 8, generation_batch_size=1024).optimizer_steps_per_generation == 4
    with pytest.raises(LaunchError, match="not a multiple of gradient_accumulation_steps"):
        batch_plan(8, 4, 8, 8, steps_per_generation=12)
    with pytest.raises(LaunchError, match="not both"):
        batch_plan(8, 4, 8, 8, steps_per_generation=32, generation_batch_size=1024)
    # TRL's losses do not need whole groups per micro-step, REAL's do.
    assert batch_plan(2, 2, 2, 8, steps_per_generation=4, loss_type="grpo").prompts_per_optimizer_step == 1
    with pytest.raises(LaunchError, match="whole groups"):
        batch_plan(2, 2, 2, 8, steps_per_generation=4, loss_type="real")
    with pytest.raises(LaunchError, match="per_device_eval_batch_size"):
        batch_plan(8, 4, 8, 8, steps_per_generation=32, per_device_eval_batch_size=5, num_generations_eval=16)


def test_toy_dataset_answers_its_questions():
    rows = toy_dataset(num_problems=50, seed=3)
    assert rows["answer"] == toy_dataset(num_problems=50, seed=3)["answer"]  # deterministic
    for prompt, answer in zip(rows["prompt"], rows["answer"]):
        question = prompt[0]["content"].split("What is ", 1)[1].split("?", 1)[0]
        a, symbol, b = question.split()
        expected = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[symbol]
        assert prompt[0]["role"] == "user" and "\\boxed{}" in prompt[0]["content"]
        assert answer == str(expected)


def test_digit_reward_reads_both_completion_forms():
    completions = [[{"role": "assistant", "content": "x = 7"}], "no digits", [{"content": ""}]]
    assert digit_reward(completions) == [1.0, 0.0, 0.0]


def test_last_checkpoint(tmp_path):
    assert last_checkpoint(str(tmp_path / "missing")) is None
    for step in (2, 10, 4):
        (tmp_path / f"checkpoint-{step}").mkdir()
    assert last_checkpoint(str(tmp_path)).endswith("checkpoint-10")


# -- the smoke recipe end to end ------------------------------------------------------------------------


def _run(command, **env):
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", **env}
    return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600)


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _train(launcher: list[str], output_dir: Path, *overrides: str) -> str:
    result = _run([*launcher, "scripts/train.py", "--config", str(SMOKE), "--output_dir", str(output_dir), *overrides])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def _accelerate(config: str, num_processes: int) -> list[str]:
    return [str(BIN / "accelerate"), "launch", "--config_file", f"accelerate_configs/{config}.yaml",
            "--num_processes", str(num_processes), "--mixed_precision", "no", "--main_process_port", _free_port()]


def _log(output_dir: Path, step: int) -> list[dict]:
    return json.loads((output_dir / f"checkpoint-{step}" / "trainer_state.json").read_text())["log_history"]


def _trained(log: list[dict]) -> bool:
    """Some optimizer step had a group with signal and a non-zero gradient (digit_reward gives the random model
    mixed groups)."""
    return any(entry.get("groups/with_signal", 0) > 0 for entry in log) and any(
        entry.get("grad_norm", 0) > 0 for entry in log
    )


@pytest.mark.slow
def test_smoke_recipe_single_process_accelerate(tmp_path):
    out = _train(_accelerate("cpu", 1), tmp_path)
    assert "[real_trl] NO batch: 1 process x 4 sequences" in out
    log = _log(tmp_path, 4)
    train_keys = set().union(*(entry for entry in log if "loss" in entry))
    assert {"reward", "rewards/math_reward/mean", "groups/with_signal", "real/weight_pos", "entropy"} <= train_keys
    assert _trained(log)
    assert any("eval_reward" in entry for entry in log)  # validation ran
    assert (tmp_path / "checkpoint-2").is_dir() and (tmp_path / "model.safetensors").is_file()


@pytest.mark.slow
def test_smoke_recipe_torchrun_two_processes_checkpoints_and_resumes(tmp_path, tiny_model_dir):
    torchrun = [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", _free_port()]
    # A saved model on disk this time: the from_pretrained path.
    model = ("--model_name_or_path", str(tiny_model_dir))
    first = _train(torchrun, tmp_path, *model, "--max_steps", "2")
    assert "MULTI_CPU batch: 2 processes" in first
    assert (tmp_path / "checkpoint-2").is_dir() and not (tmp_path / "checkpoint-4").exists()

    torchrun[-1] = _free_port()
    second = _train(torchrun, tmp_path, *model, "--max_steps", "4", "--resume", "true")
    assert f"resuming from {tmp_path / 'checkpoint-2'}" in second
    log = _log(tmp_path, 4)
    steps = [entry["step"] for entry in log if "loss" in entry]
    assert steps == [1, 2, 3, 4]  # steps 1-2 come from the checkpoint, 3-4 from the resumed run
    assert _trained(log)


@pytest.mark.slow
# accelerate (1.15) turns FSDP on only for GPU-like devices: on CPU it runs the fsdp2 config as plain
# multi-process data parallel (MULTI_CPU). The run still checks the config launches and trains end to end.
@pytest.mark.parametrize("config, backend", [("zero2", "DEEPSPEED"), ("zero3", "DEEPSPEED"), ("fsdp2", "MULTI_CPU")])
def test_smoke_recipe_sharded_two_cpu_processes(tmp_path, config, backend):
    out = _train(_accelerate(config, 2), tmp_path, "--max_steps", "2")
    assert f"[real_trl] {backend} batch: 2 processes" in out
    assert _trained(_log(tmp_path, 2))
    if backend == "DEEPSPEED":
        assert (tmp_path / "checkpoint-2" / "global_step2").is_dir()  # a DeepSpeed checkpoint, not a plain one



def test_slurm_script_launches_every_training_node_and_a_vllm_server(tmp_path):
    """Dry run of scripts/slurm/train.slurm with stand-ins for srun, scontrol, accelerate and trl."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    stand_ins = {
        "scontrol": "printf 'gpu1\\ngpu2\\ngpu3\\n'",
        # Run the step once per task, with that task's rank, as srun would on each node.
        "srun": 'n=1; while [[ $1 == --* ]]; do [[ $1 == --ntasks ]] && n=$2; shift 2; done\n'
                'for ((i = 0; i < n; i++)); do SLURM_PROCID=$i "$@"; done',
        "accelerate": f'echo "accelerate $*" >> {calls}',
        "trl": f'echo "trl $*" >> {calls}',
    }
    for name, body in stand_ins.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}:{BIN}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "gpu[1-3]", "VLLM_SERVER": "1",
           "ACCELERATE_CONFIG": "accelerate_configs/multinode_zero2.yaml"}
    result = _run(["bash", "scripts/slurm/train.slurm", str(REAL_RECIPE), "--learning_rate", "1e-6"], **env)
    assert result.returncode == 0, result.stderr
    lines = calls.read_text().splitlines()
    server = [line for line in lines if line.startswith("trl ")]
    trainers = [line for line in lines if line.startswith("accelerate ")]
    assert server == [server[0]] and "vllm-serve --model deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B" in server[0]
    assert len(trainers) == 2  # gpu1 and gpu2 train, gpu3 serves
    for rank, line in enumerate(trainers):
        assert f"--machine_rank {rank} " in line and "--num_machines 2 --num_processes 16" in line
        assert "--main_process_ip gpu1" in line
        assert line.endswith(f"--config {REAL_RECIPE} --resume true --vllm_mode server --vllm_server_host gpu3 "
                             "--vllm_server_port 8000 --learning_rate 1e-6")


@pytest.mark.slow
def test_smoke_recipe_with_lora(tmp_path):
    _train([sys.executable], tmp_path, "--use_peft", "true", "--lora_r", "4", "--lora_alpha", "8",
           "--max_steps", "2", "--eval_strategy", "no")
    adapter = json.loads((tmp_path / "adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"]) == (4, 8)
    assert not (tmp_path / "model.safetensors").exists()  # only the adapter is saved
    assert _trained(_log(tmp_path, 2))
