"""Every recipe parses with the launcher's real parser into a valid REALConfig, and holds the paper's settings
(DESIGN.md section 2) on the number of processes its accelerate config launches."""

import re
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file

from real_trl.config import REALConfig
from real_trl.launch import LaunchError, batch_plan, parse_args

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("DeepSeek-R1-Distill-Qwen-1.5B", "DeepSeek-R1-Distill-Qwen-7B")
METHODS = ("real", "bce", "real_product", "grpo", "dapo", "gspo")
PAPER_RECIPES = sorted((ROOT / "recipes").glob("DeepSeek-R1-Distill-Qwen-*/*.yaml"))

# DESIGN.md section 2, per method: loss, temperature, clip, importance-sampling level, KL.
METHOD_FIELDS = {
    "real": dict(loss_type="real", tau=0.5, beta=0.0),
    "bce": dict(loss_type="bce", tau=0.5, beta=0.0),
    "real_product": dict(loss_type="real_product", tau=0.5, beta=0.0),
    "grpo": dict(loss_type="grpo", epsilon=0.2, epsilon_high=0.2, importance_sampling_level="token", beta=0.001),
    "dapo": dict(loss_type="dapo", epsilon=0.2, epsilon_high=0.28, importance_sampling_level="token", beta=0.0),
    "gspo": dict(loss_type="grpo", epsilon=3e-4, epsilon_high=4e-4, importance_sampling_level="sequence", beta=0.0),
}
SHARED_FIELDS = dict(
    learning_rate=2e-6, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.01, max_grad_norm=1.0,
    temperature=0.6, max_completion_length=8192, entropy_coef=0.0, num_iterations=1, bf16=True,
    activation_checkpointing=True, use_vllm=True, vllm_mode="colocate", eval_strategy="steps", eval_steps=20,
    num_generations_eval=8, save_strategy="steps", save_steps=20,
)


def accelerate_config_of(recipe: Path) -> Path:
    """The accelerate config a recipe's launch command names."""
    match = re.search(r"--config_file (accelerate_configs/\S+\.yaml)", recipe.read_text())
    assert match, f"{recipe} names no accelerate config in its launch command"
    return ROOT / match.group(1)


def parse_recipe(recipe: Path, num_processes: int, monkeypatch, *overrides: str):
    # REALConfig derives its batch from the processes it runs on; simulate the launch the recipe is written for.
    monkeypatch.setattr(REALConfig, "world_size", property(lambda self: num_processes))
    # bf16 needs a GPU or use_cpu to validate; nothing else changes.
    return parse_args(["--config", str(recipe), "--use_cpu", "true", *overrides], num_processes=num_processes)


def test_every_model_has_every_method():
    names = {(p.parent.name, p.stem) for p in PAPER_RECIPES}
    expected = {(m, f"{method}_deepscaler") for m in MODELS for method in METHODS}
    expected |= {(m, "real_dapo17k") for m in MODELS}
    assert names == expected


@pytest.mark.parametrize("recipe", PAPER_RECIPES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_recipe_holds_paper_settings(recipe, monkeypatch):
    num_processes = load_config_from_file(str(accelerate_config_of(recipe))).num_processes
    assert num_processes == 8
    script_args, config, model_args = parse_recipe(recipe, num_processes, monkeypatch)
    assert isinstance(config, REALConfig)

    plan = batch_plan(
        num_processes, config.per_device_train_batch_size, config.gradient_accumulation_steps,
        config.num_generations, steps_per_generation=config.steps_per_generation, loss_type=config.loss_type,
    )
    assert plan.prompts_per_generation == 128
    assert plan.completions_per_prompt == 8
    assert plan.prompts_per_optimizer_step == 32
    assert plan.optimizer_steps_per_generation == 4
    # TRL's own derivation agrees: 1,024 sequences per generation batch.
    assert config.generation_batch_size == 128 * 8

    method, dataset = recipe.stem.rsplit("_", 1)
    for name, value in {**METHOD_FIELDS[method], **SHARED_FIELDS}.items():
        assert getattr(config, name) == pytest.approx(value), name
    assert script_args.dataset_name == dataset
    assert script_args.eval_dataset_name == "aime24"
    assert script_args.max_prompt_length == 1024
    assert script_args.reward_funcs == ["math_reward"] and script_args.require_think
    assert model_args.model_name_or_path == f"deepseek-ai/{recipe.parent.name}"
    assert model_args.dtype == "bfloat16"
    assert config.output_dir == f"outputs/{recipe.parent.name}/{recipe.stem}"


def test_rescaling_note_holds_for_four_gpus(monkeypatch):
    """The recipes' rescaling note: 4 GPUs keep the paper's batch with doubled accumulation."""
    recipe = ROOT / "recipes/DeepSeek-R1-Distill-Qwen-1.5B/real_deepscaler.yaml"
    overrides = ("--gradient_accumulation_steps", "16", "--steps_per_generation", "64")
    overrides += ("--per_device_eval_batch_size", "10")
    _, config, _ = parse_recipe(recipe, 4, monkeypatch, *overrides)
    plan = batch_plan(4, config.per_device_train_batch_size, config.gradient_accumulation_steps, config.num_generations,
                      steps_per_generation=config.steps_per_generation)
    assert plan.prompts_per_generation == 128
    assert (plan.prompts_per_optimizer_step, plan.optimizer_steps_per_generation) == (32, 4)


def test_recipe_refused_on_processes_it_does_not_divide_for(monkeypatch):
    recipe = ROOT / "recipes/DeepSeek-R1-Distill-Qwen-1.5B/real_deepscaler.yaml"
    with pytest.raises(LaunchError, match="does not divide for 6 processes"):
        parse_recipe(recipe, 6, monkeypatch)


@pytest.mark.parametrize(
    "name, processes, machines, kind",
    [("ddp", 8, 1, "MULTI_GPU"), ("zero2", 8, 1, "DEEPSPEED"), ("zero3", 8, 1, "DEEPSPEED"), ("fsdp2", 8, 1, "FSDP"),
     ("multinode_zero2", 16, 2, "DEEPSPEED"), ("cpu", 1, 1, "NO")],
)
def test_accelerate_configs_load(name, processes, machines, kind):
    config = load_config_from_file(str(ROOT / "accelerate_configs" / f"{name}.yaml"))
    assert (config.num_processes, config.num_machines, config.distributed_type.value) == (processes, machines, kind)
    assert config.use_cpu == (name == "cpu")
    assert config.mixed_precision == ("no" if name == "cpu" else "bf16")
    if name.startswith("zero") or name.startswith("multinode"):
        assert config.deepspeed_config["zero_stage"] == (3 if name == "zero3" else 2)
    if name == "fsdp2":
        assert config.fsdp_config["fsdp_version"] == 2


@pytest.mark.parametrize("num_processes", [1, 2])
def test_smoke_recipe_parses_on_one_and_two_processes(num_processes, monkeypatch):
    script_args, config, model_args = parse_recipe(ROOT / "recipes/smoke/real_toy.yaml", num_processes, monkeypatch)
    assert model_args.model_name_or_path == "real_trl.tiny" and script_args.dataset_name == "toy"
    assert config.loss_type == "real" and config.use_cpu and not config.bf16
    assert config.save_steps < config.max_steps  # leaves a checkpoint to resume from before it ends
