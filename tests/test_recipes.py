"""Every recipe, read by the launcher's parser, builds a valid REALConfig and holds the paper's settings
(docs/method.md) on the engine its accelerate config launches: batch, training length, checkpoints and
validations on generation-batch boundaries, precision."""

import json
import re
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from transformers import HfArgumentParser
from trl import ModelConfig

from real_trl.config import REALConfig
from real_trl.launch.engine import Engine, engine_from_accelerate_config
from real_trl.launch.plan import RunPlan, batch_plan, plan_problems, whole_group_problem
from real_trl.launch.recipe import ScriptArguments, parse_recipe_and_flags

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("DeepSeek-R1-Distill-Qwen-1.5B", "DeepSeek-R1-Distill-Qwen-7B")
METHODS = ("real", "bce", "real_product", "grpo", "dapo", "gspo")
PAPER_RECIPES = sorted((ROOT / "recipes").glob("DeepSeek-R1-Distill-Qwen-*/*.yaml"))
SMOKE_RECIPE = ROOT / "recipes/smoke/real_toy.yaml"


def recipe_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


# docs/method.md, per method: loss, temperature, clip, importance-sampling level, KL. The baselines turn
# TRL's vLLM importance-sampling correction off: the official code has none, and REAL ignores it.
METHOD_FIELDS = {
    "real": {"loss_type": "real", "tau": 0.5, "beta": 0.0},
    "bce": {"loss_type": "bce", "tau": 0.5, "beta": 0.0},
    "real_product": {"loss_type": "real_product", "tau": 0.5, "beta": 0.0},
    "grpo": {
        "loss_type": "grpo",
        "epsilon": 0.2,
        "epsilon_high": 0.2,
        "importance_sampling_level": "token",
        "beta": 0.001,
        "use_bias_correction_kl": False,  # the official KL: k3 without an importance-ratio factor
        "vllm_importance_sampling_correction": False,
        "whole_groups_per_step": True,
    },
    "dapo": {
        "loss_type": "dapo",
        "epsilon": 0.2,
        "epsilon_high": 0.28,
        "importance_sampling_level": "token",
        "beta": 0.0,
        "vllm_importance_sampling_correction": False,
        "whole_groups_per_step": True,
    },
    "gspo": {
        "loss_type": "grpo",
        "epsilon": 3e-4,
        "epsilon_high": 4e-4,
        "importance_sampling_level": "sequence",
        "beta": 0.0,
        "vllm_importance_sampling_correction": False,
        "whole_groups_per_step": True,
    },
}
# The paper's ~1,400 steps are generation batches of 4 optimizer steps; validation and checkpoints every 20.
SHARED_FIELDS = {
    "learning_rate": 2e-6,
    "lr_scheduler_type": "constant",
    "warmup_steps": 0,
    "weight_decay": 0.01,
    "max_grad_norm": 1.0,
    "temperature": 0.6,
    "max_completion_length": 8192,
    "entropy_coef": 0.0,
    "num_iterations": 1,
    "bf16": True,
    "activation_checkpointing": True,
    "use_vllm": True,
    "vllm_mode": "colocate",
    "eval_strategy": "steps",
    "eval_steps": 80,
    "num_generations_eval": 8,
    "save_strategy": "steps",
    "save_steps": 80,
    "max_steps": 5600,
    # the best checkpoint by validation reward is protected from save_total_limit, and nothing is reloaded
    "metric_for_best_model": "reward",
    "greater_is_better": True,
    "load_best_model_at_end": False,
}


def accelerate_config_of(recipe: Path) -> Path:
    """The accelerate config a recipe's launch command names."""
    match = re.search(r"--config_file (accelerate_configs/\S+\.yaml)", recipe.read_text())
    assert match, f"{recipe} names no accelerate config in its launch command"
    return ROOT / match.group(1)


def read_settings(recipe: Path, *flags: str) -> dict:
    """The recipe and flags as the launcher reads them: field values by name."""
    return vars(parse_recipe_and_flags(["--config", str(recipe), *flags]))


def build_configs(settings: dict, num_processes: int, monkeypatch):
    # REALConfig derives its batch from the processes it runs on; simulate the launch the recipe is written for.
    monkeypatch.setattr(REALConfig, "world_size", property(lambda self: num_processes))
    # bf16 needs a GPU or use_cpu to validate; nothing else changes.
    parser = HfArgumentParser((ScriptArguments, REALConfig, ModelConfig))
    return parser.parse_dict({**settings, "use_cpu": True}, allow_extra_keys=True)


def test_every_model_has_every_method():
    names = {(p.parent.name, p.stem) for p in PAPER_RECIPES}
    expected = {(m, f"{method}_deepscaler") for m in MODELS for method in METHODS}
    expected |= {(m, "real_dapo17k") for m in MODELS}
    assert names == expected


@pytest.mark.parametrize("recipe", PAPER_RECIPES, ids=recipe_id)
def test_recipe_holds_paper_settings(recipe, monkeypatch):
    settings = read_settings(recipe)
    engine = engine_from_accelerate_config(str(accelerate_config_of(recipe)))
    assert (engine.kind, engine.num_processes) == ("deepspeed", 8)
    run = RunPlan.from_settings(settings, engine)
    assert (run.batch.prompts_per_generation, run.batch.completions_per_prompt) == (128, 8)
    assert (run.batch.prompts_per_optimizer_step, run.batch.optimizer_steps_per_generation) == (32, 4)
    assert (run.optimizer_steps, run.save_steps, run.eval_steps) == (5600, 80, 80)
    # ZeRO keeps float32 master weights: the recipe's bfloat16 weights stand.
    assert run.precision.overrides() == {"dtype": "bfloat16", "bf16": True, "fp16": False}
    assert not run.precision.note
    # ... and its DeepSpeed config file reduces and accumulates gradients in float32, as the official runs.
    assert (run.gradients.reduce_dtype, run.gradients.accumulate_dtype) == ("float32", "float32")
    assert run.whole_groups  # REAL's losses, and the baselines through whole_groups_per_step

    script_args, config, model_args = build_configs(settings, engine.num_processes, monkeypatch)
    assert config.generation_batch_size == 128 * 8  # TRL's own derivation agrees
    method, dataset = recipe.stem.rsplit("_", 1)
    for name, value in {**METHOD_FIELDS[method], **SHARED_FIELDS}.items():
        assert getattr(config, name) == pytest.approx(value), name
    assert script_args.dataset_name == dataset
    assert script_args.eval_dataset_name == "aime24"
    assert script_args.max_prompt_length == 1024
    # The official runs' grader; each recipe says how to train on math-verify instead.
    assert script_args.reward_funcs == ["paper_math_reward"] and script_args.require_think
    assert "reward_funcs: [math_reward]" in recipe.read_text()
    assert model_args.model_name_or_path == f"deepseek-ai/{recipe.parent.name}"
    assert model_args.dtype == "bfloat16"
    assert config.output_dir == f"outputs/{recipe.parent.name}/{recipe.stem}"


@pytest.mark.parametrize(
    "recipe, num_processes",
    [(recipe, 8) for recipe in PAPER_RECIPES] + [(SMOKE_RECIPE, 1), (SMOKE_RECIPE, 2)],
    ids=lambda value: recipe_id(value) if isinstance(value, Path) else str(value),
)
def test_checkpoints_and_validations_fall_on_generation_batches(recipe, num_processes):
    settings = read_settings(recipe)
    assert plan_problems(settings, num_processes) == []
    per_generation = batch_plan(settings, num_processes).optimizer_steps_per_generation
    for name in ("max_steps", "save_steps", "eval_steps"):
        assert settings[name] % per_generation == 0, name


def test_plan_printout_states_the_length_in_both_units():
    zero2 = engine_from_accelerate_config(str(ROOT / "accelerate_configs/zero2.yaml"))
    recipes = ROOT / "recipes/DeepSeek-R1-Distill-Qwen-1.5B"
    deepscaler = RunPlan.from_settings(read_settings(recipes / "real_deepscaler.yaml"), zero2).describe()
    assert "5,600 optimizer steps = 1,400 generation batches = 4.4 epochs of 40,315 problems" in deepscaler
    dapo = RunPlan.from_settings(read_settings(recipes / "real_dapo17k.yaml"), zero2).describe()
    assert "5,600 optimizer steps = 1,400 generation batches = 10.3 epochs of 17,398 problems" in dapo


def test_rescaling_note_holds_for_four_gpus():
    """The recipes' rescaling note: 4 GPUs keep the paper's batch with doubled accumulation."""
    recipe = ROOT / "recipes/DeepSeek-R1-Distill-Qwen-1.5B/real_deepscaler.yaml"
    flags = (
        "--gradient_accumulation_steps",
        "16",
        "--steps_per_generation",
        "64",
        "--per_device_eval_batch_size",
        "10",
    )
    settings = read_settings(recipe, *flags)
    assert plan_problems(settings, 4) == []
    batch = batch_plan(settings, 4)
    assert (batch.prompts_per_generation, batch.prompts_per_optimizer_step) == (128, 32)
    assert batch.optimizer_steps_per_generation == 4


def test_recipe_refused_on_processes_it_does_not_divide_for():
    settings = read_settings(ROOT / "recipes/DeepSeek-R1-Distill-Qwen-1.5B/real_deepscaler.yaml")
    six = plan_problems(settings, 6)
    assert len(six) == 1 and "per_device_eval_batch_size 5 x 6 processes = 30" in six[0]
    assert plan_problems(settings, 3)[0] == whole_group_problem(4, 3, 8)


@pytest.mark.parametrize(
    "config, dtype", [("ddp", "float32"), ("fsdp2", "bfloat16"), ("zero2", "bfloat16"), ("zero3", "bfloat16")]
)
def test_paper_recipe_precision_on_each_engine(config, dtype):
    """bfloat16 weights on DDP would be stepped without a float32 copy: the plan loads them in float32. Every
    shipped config reduces and accumulates gradients in float32."""
    settings = read_settings(ROOT / "recipes/DeepSeek-R1-Distill-Qwen-7B/real_deepscaler.yaml")
    run = RunPlan.from_settings(
        settings, engine_from_accelerate_config(str(ROOT / f"accelerate_configs/{config}.yaml"))
    )
    assert run.precision.overrides() == {"dtype": dtype, "bf16": True, "fp16": False}
    assert run.precision.compute_dtype == "bfloat16"
    assert bool(run.precision.note) == (config == "ddp")
    assert run.gradients.float32 and not run.gradients.problem


@pytest.mark.parametrize(
    "name, processes, machines, kind",
    [
        ("ddp", 8, 1, "MULTI_GPU"),
        ("zero2", 8, 1, "DEEPSPEED"),
        ("zero3", 8, 1, "DEEPSPEED"),
        ("fsdp2", 8, 1, "FSDP"),
        ("multinode_zero2", 16, 2, "DEEPSPEED"),
        ("cpu", 1, 1, "MULTI_GPU"),  # accelerate's multi-process launcher; use_cpu keeps the processes on CPU
    ],
)
def test_accelerate_configs_load(name, processes, machines, kind):
    path = str(ROOT / "accelerate_configs" / f"{name}.yaml")
    config = load_config_from_file(path)
    assert (config.num_processes, config.num_machines, config.distributed_type.value) == (processes, machines, kind)
    assert config.use_cpu == (name == "cpu")
    deepspeed = name.startswith(("zero", "multinode"))
    # With a DeepSpeed config file accelerate takes no mixed precision: the JSON's "auto" follows the recipe's bf16.
    assert config.mixed_precision == ("no" if name == "cpu" else None if deepspeed else "bf16")
    engine = engine_from_accelerate_config(path)  # the plan reads the same engine accelerate does
    if deepspeed:
        stage = 3 if name == "zero3" else 2
        file = ROOT / config.deepspeed_config["deepspeed_config_file"]
        deepspeed_config = json.loads(file.read_text())
        assert deepspeed_config["zero_optimization"]["stage"] == engine.zero_stage == stage
        assert deepspeed_config["bf16"] == {"enabled": "auto"} and engine.mixed_precision == "auto"
        # gradients reduced and accumulated in float32, as the official runs (DeepSpeed's defaults are bf16)
        assert deepspeed_config["communication_data_type"] == "fp32"
        assert deepspeed_config["data_types"] == {"grad_accum_dtype": "fp32"}
        assert (engine.communication_dtype, engine.grad_accum_dtype) == ("float32", "float32")
        # accelerate refuses these next to a DeepSpeed config file (its _deepspeed_config_checks)
        refused = {"zero_stage", "offload_optimizer_device", "offload_param_device", "zero3_save_16bit_model"}
        assert not refused & set(config.deepspeed_config) and config.mixed_precision is None
    else:
        assert engine.mixed_precision == config.mixed_precision
    if name == "fsdp2":
        assert config.fsdp_config["fsdp_version"] == 2
    assert engine.num_processes == config.num_processes
    kinds = {"MULTI_GPU": "ddp" if processes > 1 else "single", "DEEPSPEED": "deepspeed", "FSDP": "fsdp"}
    assert engine.kind == kinds[kind]


@pytest.mark.parametrize("num_processes", [1, 2])
def test_smoke_recipe_parses_on_one_and_two_processes(num_processes, monkeypatch):
    settings = read_settings(SMOKE_RECIPE)
    script_args, config, model_args = build_configs(settings, num_processes, monkeypatch)
    assert model_args.model_name_or_path == "real_trl.tiny" and script_args.dataset_name == "toy"
    assert config.loss_type == "real" and config.use_cpu and not config.bf16
    assert config.save_steps < config.max_steps  # leaves a checkpoint to resume from before it ends
    # float32 weights on one CPU process: nothing to change.
    run = RunPlan.from_settings(settings, Engine("ddp" if num_processes > 1 else "single", num_processes))
    assert not run.precision.note and run.precision.compute_dtype == "float32"


def test_recipes_point_to_files_in_the_repository():
    for path in [*PAPER_RECIPES, SMOKE_RECIPE, *(ROOT / "accelerate_configs").glob("*.yaml")]:
        text = path.read_text()
        assert "DESIGN.md" not in text, path
        for reference in re.findall(r"\b((?:docs|accelerate_configs|recipes|scripts)/[\w./-]+\w)", text):
            assert (ROOT / reference).exists(), f"{path.name} points to {reference}, which does not exist"
