"""The launcher: every mistake it can see is reported together, one line each, before anything loads; the run
folder is never mixed between runs; the smoke recipe runs end to end under accelerate (one CPU process; DeepSpeed
ZeRO-2/3 and FSDP2 with two) and torchrun, checkpoints, resumes and leaves its log history on disk."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx2
import huggingface_hub
import pytest
import torch
from huggingface_hub.errors import RepositoryNotFoundError

from real_trl import models
from real_trl.cli import UsageError
from real_trl.launch import launcher, run_dir
from real_trl.launch.launcher import (
    build_arguments,
    check_launch,
    cpu_threads_per_process,
    last_checkpoint,
    main,
    parse_args,
    trainer_model,
)
from real_trl.launch.recipe import build_parser
from real_trl.tiny import build_tiny_tokenizer

from helpers import free_port

ROOT = Path(__file__).resolve().parents[1]
REAL_RECIPE = ROOT / "recipes/DeepSeek-R1-Distill-Qwen-1.5B/real_deepscaler.yaml"
SMOKE = ROOT / "recipes/smoke/real_toy.yaml"
BIN = Path(sys.executable).parent
HELP = "scripts/train.py --help lists them"


@pytest.fixture(autouse=True)
def no_hub_calls(monkeypatch):
    """No test reaches the Hub: a model check that tried would fail the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the launcher called the Hub")

    monkeypatch.setattr(huggingface_hub, "model_info", refuse)
    for launcher_variable in ("LOCAL_RANK", "ACCELERATE_MIXED_PRECISION"):
        monkeypatch.delenv(launcher_variable, raising=False)


def write_recipe(tmp_path, text: str) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(SMOKE.read_text() + text)
    return str(path)


def problems_of(argv: list[str], **kwargs) -> list[str]:
    with pytest.raises(UsageError) as caught:
        parse_args(argv, **kwargs)
    return caught.value.problems


def smoke(tmp_path, *flags: str) -> list[str]:
    return ["--config", str(SMOKE), "--output_dir", str(tmp_path / "run"), *flags]


# -- mistakes: every one, one line each, naming where it came from ------------------------------------


def test_wrong_types_name_the_recipe_key_or_the_flag(tmp_path):
    recipe = write_recipe(tmp_path, "max_steps: four\nlearning_rat: 1.0e-6\n")
    problems = problems_of(["--config", recipe, "--tau", "abc", "--resume", "yes_please", "--tua", "0.3"])
    assert problems == [
        f"recipe key 'max_steps' in {recipe}: 'four' is not an integer",
        f"recipe key 'learning_rat' in {recipe} is not a field (did you mean learning_rate?); {HELP}",
        "flag --tau: 'abc' is not a number",
        "flag --resume: 'yes_please' is not true or false",
        "unknown flag --tua (did you mean --tau?); scripts/train.py --help lists the fields",
    ]


def test_choices_lists_and_flag_values_are_checked(tmp_path):
    recipe = write_recipe(tmp_path, "eval_strategy: sometimes\ntau: [0.5, 1]\n")
    problems = problems_of(["--config", recipe, "--reward_funcs", "--max_steps", "1", "2"])
    assert problems == [
        f"recipe key 'tau' in {recipe} takes one value, got a list [0.5, 1]",  # in the recipe's order
        f"recipe key 'eval_strategy' in {recipe}: 'sometimes' is not one of no, steps, epoch",
        "flag --reward_funcs takes one or more values, got 0: none",
        "flag --max_steps takes one value, got 2: 1 2",
    ]


def test_malformed_yaml_gives_line_and_column(tmp_path):
    recipe = tmp_path / "broken.yaml"
    recipe.write_text("loss_type: real\nreward_funcs: [math_reward\ntau: 0.5\n")
    assert problems_of(["--config", str(recipe)]) == [
        f"recipe {recipe} is not valid YAML at line 3, column 4: expected ',' or ']', but got ':'"
    ]


def test_every_problem_the_launcher_sees_is_reported_together(tmp_path, without_vllm):
    # A paper recipe adapted to CPU in one go: each of these used to stop a run of its own.
    problems = problems_of(
        ["--config", str(REAL_RECIPE), "--output_dir", str(tmp_path / "run"), "--dataset_name", "deepscalr",
         "--reward_funcs", "math_reward", "accuracy", "--model_name_or_path", str(tmp_path / "missing")],
        num_processes=3,
    )  # fmt: skip
    expected = [
        "unknown dataset_name 'deepscalr': choose one of deepscaler, dapo17k",
        "unknown reward function(s) accuracy: choose from math_reward",
        "the group-level plan (REAL losses, whole_groups_per_step) needs whole groups in every micro-step: "
        "per_device_train_batch_size (4) x num_processes (3) = 12",
        "batch arithmetic does not divide for 3 processes: per_device_eval_batch_size 5 x 3 processes = 15",
        "use_vllm is true but vLLM is not installed: pip install 'real-trl[vllm]'",
        f"model path {tmp_path / 'missing'} does not exist",
    ]
    assert len(problems) == len(expected), problems
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start)


real_find_spec = importlib.util.find_spec


@pytest.fixture
def without_vllm(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "vllm" else real_find_spec(name))


def test_a_dataclass_check_becomes_one_line(tmp_path):
    assert problems_of(smoke(tmp_path, "--tau", "0")) == ["tau must be > 0 (got 0.0); the paper uses tau=0.5."]


def test_validation_needs_a_validation_set(tmp_path):
    recipe = write_recipe(tmp_path, "eval_dataset_name: null\n")
    assert "eval_dataset_name is not set" in problems_of(["--config", recipe])[0]


def test_any_dataset_name_with_a_local_path(tmp_path):
    script_args, _, _ = parse_args(smoke(tmp_path, "--dataset_name", "mine", "--dataset_path", str(tmp_path)))
    assert (script_args.dataset_name, script_args.dataset_path) == ("mine", str(tmp_path))


def test_script_prints_one_line_and_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(smoke(tmp_path, "--tau", "abc"))
    assert (stopped.value.code, capsys.readouterr().err) == (2, "error: flag --tau: 'abc' is not a number\n")


def test_under_a_launcher_the_problems_are_framed(tmp_path, monkeypatch, capsys):
    # WORLD_SIZE and LOCAL_RANK are what accelerate launch / torchrun export; no process group exists yet.
    for name, value in {"WORLD_SIZE": "6", "RANK": "0", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        main(["--config", str(REAL_RECIPE), "--output_dir", str(tmp_path), "--use_vllm", "false",
              "--model_name_or_path", "real_trl.tiny"])  # fmt: skip
    lines = capsys.readouterr().err.strip().splitlines()
    assert stopped.value.code == 2
    assert lines[0] == lines[-1] == launcher.BANNER
    assert lines[1].startswith("error: batch arithmetic does not divide for 6 processes: per_device_eval_batch_size")
    assert lines[2].startswith("(nothing was loaded;")


# -- the model: a missing one fails in seconds, without the Hub when it cannot help --------------------


@pytest.mark.parametrize("name", ["./nope", "/no/such/model", "~/nope/", "a/b/c"])
def test_missing_local_model_path(name):
    assert models.model_problem(name) == f"model path {name} does not exist"


def test_folder_without_a_model(tmp_path):
    assert "has no config.json" in models.model_problem(str(tmp_path))


def test_hub_id_offline_and_not_cached(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    problem = models.model_problem("no-such-org/no-such-model")
    assert problem.startswith("model no-such-org/no-such-model is not in the local Hugging Face cache and "
                              "HF_HUB_OFFLINE is set")  # fmt: skip


def _online(monkeypatch, error: Exception) -> list:
    calls = []

    def model_info(name, revision=None, timeout=None):
        calls.append((name, timeout))
        raise error

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "model_info", model_info)
    return calls


def test_unreachable_hub_says_how_to_work_offline(monkeypatch):
    calls = _online(monkeypatch, httpx2.ConnectError("Name or service not known"))
    assert models.model_problem("org/model") == (
        "cannot reach the Hugging Face Hub to fetch model org/model (ConnectError); to work offline, download the "
        "model once (or give a local folder) and set HF_HUB_OFFLINE=1"
    )
    assert calls == [("org/model", models.HUB_TIMEOUT_S)]  # one call, with a short timeout


def test_hub_typos_are_named(monkeypatch):
    response = httpx2.Response(404, request=httpx2.Request("GET", "https://huggingface.co/api/models/x"))
    _online(monkeypatch, RepositoryNotFoundError("not found", response=response))
    assert models.model_problem("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5") == (
        "no model deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5 on the Hugging Face Hub; "
        "check the id, or give a local folder"
    )
    # a typo of the built-in model is answered without asking the Hub
    monkeypatch.setattr(models.huggingface_hub, "model_info", lambda *a, **k: pytest.fail("asked the Hub"))
    assert (
        models.model_problem("real_trl.tiny_")
        == "unknown built-in model real_trl.tiny_: the one built in is real_trl.tiny"
    )


# -- the run folder ------------------------------------------------------------------------------------


def _started_run(folder: Path, *checkpoints: int, settings: dict | None = None) -> None:
    for step in checkpoints:
        (folder / f"checkpoint-{step}").mkdir(parents=True)
    if settings is not None:
        (folder / run_dir.SETTINGS_FILE).write_text(json.dumps(settings))


def test_a_folder_holding_a_run_is_refused_unless_resumed_or_overwritten(tmp_path):
    _started_run(tmp_path / "run", 2, 4)
    (problem,) = problems_of(smoke(tmp_path))
    assert problem == (
        f"output_dir {tmp_path / 'run'} already holds a run (checkpoint-2, checkpoint-4): pass --resume true to "
        "continue it, --overwrite_output_dir true to delete its checkpoints and start over, or choose another "
        "--output_dir"
    )
    parse_args(smoke(tmp_path, "--resume", "true"))
    settings, _ = check_launch(smoke(tmp_path, "--overwrite_output_dir"))
    run_dir.prepare_output_dir(settings["output_dir"], {"loss_type": "real"}, overwrite=True)
    assert run_dir.run_markers(settings["output_dir"]) == [run_dir.SETTINGS_FILE]  # nothing stale is left
    assert "and start over" in problems_of(smoke(tmp_path))[0]  # the new run holds the folder now


def test_resuming_with_changed_settings_names_them(tmp_path):
    settings, plan = check_launch(smoke(tmp_path))
    stored = run_dir.key_settings(settings, plan.batch)
    _started_run(tmp_path / "run", 2, settings=stored)
    problems = problems_of(smoke(tmp_path, "--resume", "--learning_rate", "1e-3", "--per_device_train_batch_size", "8"))
    assert len(problems) == 1
    assert problems[0].startswith(f"resuming {tmp_path / 'run'} with changed settings (learning_rate 0.0001 -> 0.001, "
                                  "sequences_per_micro_step 4 -> 8, prompts_per_optimizer_step 1 -> 2, ")  # fmt: skip
    assert problems[0].endswith("pass --allow_changed_settings true to resume anyway, or choose another --output_dir "
                                "for a new run")  # fmt: skip
    parse_args(smoke(tmp_path, "--resume", "--learning_rate", "1e-3", "--allow_changed_settings"))
    parse_args(smoke(tmp_path, "--resume"))  # the same settings resume


def test_output_dir_and_checkpoint_must_be_usable(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    assert problems_of(["--config", str(SMOKE), "--output_dir", str(tmp_path / "file" / "run")]) == [
        f"output_dir {tmp_path / 'file' / 'run'} cannot be created: {tmp_path / 'file'} is a file"
    ]
    missing = str(tmp_path / "checkpoint-9")
    assert problems_of(smoke(tmp_path, "--resume_from_checkpoint", missing)) == [
        f"resume_from_checkpoint {missing} does not exist"
    ]
    monkeypatch.setattr(run_dir.os, "access", lambda path, mode: False)  # as a non-root user on a read-only folder
    assert "is not writable" in problems_of(smoke(tmp_path))[0]


def test_last_checkpoint(tmp_path):
    assert last_checkpoint(str(tmp_path / "missing")) is None
    for step in (2, 10, 4):
        (tmp_path / f"checkpoint-{step}").mkdir()
    assert last_checkpoint(str(tmp_path)).endswith("checkpoint-10")


# -- --help, --dry_run, precision, threads ------------------------------------------------------------


def test_help_lists_config_first_and_the_projects_fields_before_trls():
    text = build_parser().format_help()
    assert text.startswith("usage: ") and len(text.split("\n\n", 1)[0].splitlines()) == 1  # a one-line usage
    order = [text.index(flag) for flag in ("--config", "--dataset_name", "--tau", "--learning_rate", "--lora_r")]
    assert order == sorted(order)
    assert "Resume from the last checkpoint in output_dir" in " ".join(text.split())


def test_dry_run_prints_the_plan_and_loads_nothing(tmp_path, monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise AssertionError("a dry run loaded something")

    for name in ("load_tokenizer", "load_datasets", "trainer_model", "train"):
        monkeypatch.setattr(launcher, name, refuse)
    main(["--config", str(REAL_RECIPE), "--output_dir", str(tmp_path), "--model_name_or_path", "real_trl.tiny",
          "--use_vllm", "false", "--dry_run", "--accelerate_config", "accelerate_configs/zero2.yaml"])  # fmt: skip
    text = capsys.readouterr().out
    assert "engine: DeepSpeed ZeRO-2, 8 processes" in text
    assert "batch: 8 processes x 4 sequences per micro-step; 128 prompts x 8 completions per generation batch" in text
    assert "5,600 optimizer steps = 1,400 generation batches" in text
    assert "log-probs: TRL's fused LM head (no full logits), tiles of 4,096 tokens (Triton kernel on GPU;" in text
    assert text.rstrip().endswith("dry run: nothing was loaded; run again without --dry_run to train")
    assert not (tmp_path / run_dir.SETTINGS_FILE).exists()


@pytest.mark.parametrize("config", ["zero2", "zero3"])
@pytest.mark.parametrize(
    "recipe",
    sorted((ROOT / "recipes").glob("DeepSeek-R1-Distill-Qwen-*/*.yaml")),
    ids=lambda p: f"{p.parent.name.rsplit('-', 1)[-1]}/{p.stem}",
)
def test_dry_run_answers_on_a_machine_without_vllm_a_gpu_or_the_model(recipe, config, tmp_path, monkeypatch, capsys):
    """The paper recipes as a new user tries them on a laptop: no vLLM, no GPU, the model not in the cache
    (HF_HUB_OFFLINE=1). The plan comes whole, float32 gradients included, and what the machine lacks is listed."""
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "vllm" else real_find_spec(name))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    flags = [
        "--output_dir",
        str(tmp_path / "run"),
        "--dry_run",
        "--accelerate_config",
        f"accelerate_configs/{config}.yaml",
    ]
    main(["--config", str(recipe), *flags])  # returns: exit code 0
    text = capsys.readouterr().out
    for line in ("engine: DeepSpeed ZeRO-", "batch: 8 processes x 4 sequences", "layout: whole groups",
                 "log-probs: TRL's fused LM head (no full logits), tiles of 4,096 tokens", "length: ",
                 "checkpoints: ", "validation: ", "precision: ",
                 "gradients: reduced in float32, accumulated in float32"):  # fmt: skip
        assert f"\n{line}" in f"\n{text}", line
    lacks = text.split("on this machine (a launch here would stop on these; the plan does not depend on them):\n")[1]
    assert lacks.splitlines()[:3] == [
        "  - use_vllm is true but vLLM is not installed: pip install 'real-trl[vllm]', or set use_vllm false",
        f"  - model deepseek-ai/{recipe.parent.name} is not in the local Hugging Face cache and HF_HUB_OFFLINE is "
        "set: download it with network access first, or give a local folder",
        "  - no GPU visible and use_cpu is false: the recipe trains on GPUs",
    ]
    assert text.rstrip().endswith("dry run: nothing was loaded; run again without --dry_run to train")


def test_a_launch_without_vllm_or_the_model_still_refuses(tmp_path, monkeypatch, without_vllm):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    problems = problems_of(["--config", str(REAL_RECIPE), "--output_dir", str(tmp_path / "run")], num_processes=8)
    assert [problem.split(":")[0] for problem in problems] == [
        "use_vllm is true but vLLM is not installed",
        "model deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B is not in the local Hugging Face cache and HF_HUB_OFFLINE "
        "is set",
    ]
    with pytest.raises(SystemExit) as stopped:
        main(["--config", str(REAL_RECIPE), "--output_dir", str(tmp_path / "run")])
    assert stopped.value.code == 2


@pytest.mark.parametrize(
    ("flags", "refusal"),
    [
        (["--vllm_mode", "server"], "vllm_mode server needs a GPU: TRL pushes the weights to the vLLM server"),
        (["--vllm_enable_sleep_mode", "true"], "vllm_enable_sleep_mode needs a GPU: vLLM's CPU platform has no sleep"),
    ],
)
def test_vllm_settings_cpu_vllm_cannot_honour_are_refused_without_a_gpu(tmp_path, monkeypatch, flags, refusal):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: name == "vllm" or real_find_spec(name))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert [p for p in problems_of(smoke(tmp_path, "--use_vllm", "true", *flags)) if p.startswith(refusal)]
    main(smoke(tmp_path, "--use_vllm", "true", *flags, "--dry_run"))  # a dry run lists it under the plan
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert not [p for p in problems_of(smoke(tmp_path, "--use_vllm", "true", *flags, "--tau", "0")) if "GPU" in p]


def test_a_vllm_max_model_length_that_would_cut_completions_is_refused(tmp_path):
    # the smoke recipe: prompts up to 256 tokens, completions up to 24
    problems = problems_of(smoke(tmp_path, "--use_vllm", "true", "--vllm_max_model_length", "200"))
    assert problems[0] == (
        "vllm_max_model_length 200 is shorter than max_prompt_length 256 + max_completion_length 24 = 280, so vLLM "
        "would cut completions short: raise it to 280 or more"
    )
    settings, _ = check_launch(smoke(tmp_path, "--use_vllm", "false", "--vllm_max_model_length", "200"))
    assert settings["vllm_max_model_length"] == 200  # without vLLM the setting is unused


def test_the_tiny_model_is_saved_for_vllm_in_output_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: name == "vllm" or real_find_spec(name))
    _, training_args, model_args = parse_args(smoke(tmp_path, "--use_vllm", "true"))
    model = trainer_model(model_args, training_args, build_tiny_tokenizer())
    folder = tmp_path / "run" / "real_trl.tiny"
    assert model.name_or_path == str(folder) and (folder / "config.json").is_file()
    assert (folder / "tokenizer_config.json").is_file()


def test_bf16_weights_on_one_process_are_loaded_in_float32(tmp_path, tiny_model_dir):
    # One process steps the parameters themselves: bf16 weights would lose AdamW's small updates.
    settings, plan = check_launch(smoke(tmp_path, "--dtype", "bfloat16", "--bf16", "true", "--use_cpu", "true"))
    assert "dtype bfloat16 -> float32" in plan.precision.note
    _, training_args, model_args = build_arguments(settings, plan)
    assert (model_args.dtype, training_args.bf16) == ("float32", True)
    tiny = trainer_model(model_args, training_args, build_tiny_tokenizer())
    assert {p.dtype for p in tiny.parameters()} == {torch.float32}
    model_args.model_name_or_path = str(tiny_model_dir)
    assert trainer_model(model_args, training_args, None) == str(tiny_model_dir)
    assert training_args.model_init_kwargs["dtype"] == "float32"  # what TRL's from_pretrained receives


def test_float32_gradient_reduction_leaves_other_engines_alone(tmp_path):
    """The launcher calls it on every trainer; it changes only FSDP2 under bf16 (tests/test_gradient_precision.py
    measures that case)."""
    from transformers import Trainer, TrainingArguments

    from real_trl.launch.fsdp import reduce_fsdp2_gradients_in_float32
    from real_trl.tiny import build_tiny_model

    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[])
    trainer = Trainer(model=build_tiny_model(seed=0), args=args)
    assert reduce_fsdp2_gradients_in_float32(trainer) is False
    assert "sync_each_batch" not in trainer.accelerator.gradient_state.plugin_kwargs


def test_cpu_threads_count_the_reward_workers(monkeypatch):
    assert cpu_threads_per_process(cores=2, local_processes=1, reward_workers=0) == 2
    assert cpu_threads_per_process(cores=2, local_processes=1, reward_workers=2) == 1
    assert cpu_threads_per_process(cores=64, local_processes=2, reward_workers=3) == 8
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert launcher.set_cpu_threads() is None  # the user's choice stands


# -- the smoke recipe end to end ------------------------------------------------------------------------


def _run(command, **env):
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", **env}
    return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600, check=False)


def _train(launcher: list[str], output_dir: Path, *overrides: str) -> str:
    result = _run([*launcher, "scripts/train.py", "--config", str(SMOKE), "--output_dir", str(output_dir), *overrides])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def _accelerate(config: str, num_processes: int) -> list[str]:
    return [str(BIN / "accelerate"), "launch", "--config_file", f"accelerate_configs/{config}.yaml",
            "--num_processes", str(num_processes), "--mixed_precision", "no",
            "--main_process_port", str(free_port())]  # fmt: skip


def _log(folder: Path) -> list[dict]:
    return json.loads((folder / "trainer_state.json").read_text())["log_history"]


def _trained(log: list[dict]) -> bool:
    """Some optimizer step had a group with signal and a non-zero gradient (digit_reward gives the random model
    mixed groups)."""
    return any(entry.get("groups/with_signal", 0) > 0 for entry in log) and any(
        entry.get("grad_norm", 0) > 0 for entry in log
    )


@pytest.mark.slow
def test_smoke_recipe_single_process_accelerate(tmp_path):
    out = _train(_accelerate("cpu", 1), tmp_path)
    assert "[real_trl] batch: 1 process x 4 sequences" in out
    for noise in ("FutureWarning", "unable to detect", "[real_trl] NO"):
        assert noise not in out
    log = _log(tmp_path)  # the log history of the whole run, in output_dir
    train_keys = set().union(*(entry for entry in log if "loss" in entry))
    assert {"reward", "rewards/math_reward/mean", "groups/with_signal", "real/weight_pos", "entropy"} <= train_keys
    assert _trained(log) and any("eval_reward" in entry for entry in log)  # it trained and validated
    assert (tmp_path / "checkpoint-2").is_dir() and (tmp_path / "model.safetensors").is_file()
    assert json.loads((tmp_path / run_dir.SETTINGS_FILE).read_text())["prompts_per_generation"] == 2
    # metric_for_best_model "reward" found TRL's eval_reward: transformers recorded (and so protects) the best
    state = json.loads((tmp_path / "trainer_state.json").read_text())
    validation = [entry["eval_reward"] for entry in log if "eval_reward" in entry]
    assert state["best_metric"] == max(validation) and state["best_model_checkpoint"].endswith("checkpoint-4")


@pytest.mark.slow
def test_cpu_config_starts_as_many_cpu_processes_as_asked(tmp_path):
    script = tmp_path / "where.py"
    script.write_text(
        "import os\nfrom accelerate import PartialState\nstate = PartialState(cpu=True)\n"
        # one write per process: with PYTHONUNBUFFERED, print's pieces of two processes interleave in the pipe
        "os.write(1, f'rank {state.process_index} of {state.num_processes} {state.device.type}\\n'.encode())\n"
    )
    for processes in (1, 2):
        result = _run([*_accelerate("cpu", processes), str(script)])
        assert result.returncode == 0, result.stderr[-2000:]
        lines = sorted(line for line in result.stdout.splitlines() if line.startswith("rank"))
        assert lines == [f"rank {rank} of {processes} cpu" for rank in range(processes)]


@pytest.mark.slow
def test_smoke_recipe_torchrun_two_processes_checkpoints_and_resumes(tmp_path, tiny_model_dir):
    torchrun = [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(free_port())]
    model = ("--model_name_or_path", str(tiny_model_dir))  # a saved model on disk: the from_pretrained path
    first = _train(torchrun, tmp_path, *model, "--max_steps", "2")
    assert "[real_trl] engine: DDP, 2 processes" in first
    assert (tmp_path / "checkpoint-2").is_dir() and not (tmp_path / "checkpoint-4").exists()

    torchrun[-1] = str(free_port())
    second = _train(torchrun, tmp_path, *model, "--max_steps", "4", "--resume", "true")
    assert f"resuming from {tmp_path / 'checkpoint-2'}" in second
    assert "missing keys" not in second  # the tied lm_head is not reported missing
    steps = [entry["step"] for entry in _log(tmp_path / "checkpoint-4") if "loss" in entry]
    assert steps == [1, 2, 3, 4]  # steps 1-2 come from the checkpoint, 3-4 from the resumed run
    assert _trained(_log(tmp_path))


@pytest.mark.slow
# accelerate (1.15) turns FSDP on only for GPU-like devices: on CPU it runs the fsdp2 config as plain
# multi-process data parallel. The run still checks the config launches and trains end to end.
@pytest.mark.parametrize("config", ["zero2", "zero3", "fsdp2"])
def test_smoke_recipe_sharded_two_cpu_processes(tmp_path, config):
    out = _train(_accelerate(config, 2), tmp_path, "--max_steps", "2")
    assert "[real_trl] batch: 2 processes" in out
    # DeepSpeed's accelerator line: accelerate's own process may print it once, the training processes do not.
    assert out.count("accelerator to") <= 1
    assert _trained(_log(tmp_path))
    if config.startswith("zero"):
        assert (tmp_path / "checkpoint-2" / "global_step2").is_dir()  # a DeepSpeed checkpoint, not a plain one


@pytest.mark.slow
def test_smoke_recipe_with_lora_and_no_checkpoints(tmp_path):
    _train([sys.executable], tmp_path, "--use_peft", "true", "--lora_r", "4", "--lora_alpha", "8",
           "--max_steps", "2", "--eval_strategy", "no", "--save_strategy", "no")  # fmt: skip
    adapter = json.loads((tmp_path / "adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"]) == (4, 8)
    assert not (tmp_path / "model.safetensors").exists()  # only the adapter is saved
    assert not list(tmp_path.glob("checkpoint-*"))
    assert _trained(_log(tmp_path))  # the log history is on disk without any checkpoint


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
    }  # fmt: skip
    for name, body in stand_ins.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}:{BIN}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "gpu[1-3]", "VLLM_SERVER": "1",
           "ACCELERATE_CONFIG": "accelerate_configs/multinode_zero2.yaml"}  # fmt: skip
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
                             "--vllm_server_port 8000 --learning_rate 1e-6")  # fmt: skip
