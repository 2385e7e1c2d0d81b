"""The run plan and the precision decision: every batch and schedule rule, every engine, on CPU."""

import dataclasses
from pathlib import Path

import pytest
from trl import ModelConfig

from real_trl.config import REALConfig
from real_trl.launch.engine import (
    Engine,
    decide_precision,
    engine_from_accelerate_config,
    engine_from_environment,
    gradient_precision,
)
from real_trl.launch.plan import (
    DEFAULTS,
    PlanError,
    RunPlan,
    batch_plan,
    known_dataset_size,
    plan_problems,
    schedule_problems,
    whole_group_problem,
)
from real_trl.layout import check_layout
from real_trl.losses import REAL_LOSS_TYPES

# The paper's batch on 8 processes, with its schedule (docs/method.md).
PAPER = dict(  # noqa: C408 (field names as in a recipe)
    per_device_train_batch_size=4, gradient_accumulation_steps=8, steps_per_generation=32, num_generations=8,
    loss_type="real", eval_strategy="steps", eval_steps=80, per_device_eval_batch_size=5, num_generations_eval=8,
    save_strategy="steps", save_steps=80, max_steps=5600, dtype="bfloat16", bf16=True, dataset_name="deepscaler",
)  # fmt: skip
ZERO2 = Engine("deepspeed", 8, "bf16", zero_stage=2)  # an inline accelerate config: DeepSpeed's own defaults
# What accelerate_configs/zero2.yaml and zero3.yaml launch: DeepSpeed JSON files with float32 gradients.
SHIPPED_ZERO = {
    stage: Engine(
        "deepspeed", 8, "auto", zero_stage=stage, source=f"accelerate_configs/zero{stage}.yaml",
        deepspeed_config_file=f"accelerate_configs/deepspeed_zero{stage}.json", communication_dtype="float32",
        grad_accum_dtype="float32",
    )
    for stage in (2, 3)
}  # fmt: skip


def test_defaults_are_trl_defaults():
    trl_defaults = {f.name: f.default for cls in (REALConfig, ModelConfig) for f in dataclasses.fields(cls)}
    launcher_fields = {"dataset_name", "dataset_path", "max_train_samples"}
    assert {name: trl_defaults[name] for name in DEFAULTS.keys() - launcher_fields} == {
        name: value for name, value in DEFAULTS.items() if name not in launcher_fields
    }


def test_one_wording_for_the_whole_group_rule():
    assert whole_group_problem(4, 8, 8) is None
    with pytest.raises(ValueError) as refused:
        check_layout(4, 3, 8)
    assert str(refused.value) == whole_group_problem(4, 3, 8)
    with pytest.raises(ValueError) as refused_by_config:
        REALConfig(
            output_dir="out",
            per_device_train_batch_size=2,
            gradient_accumulation_steps=2,
            num_generations=4,
            report_to=[],
        )
    assert str(refused_by_config.value) == whole_group_problem(2, 1, 4)


# -- batch arithmetic ------------------------------------------------------------------------------------


def test_batch_plan_matches_the_paper_on_eight_processes():
    batch = batch_plan(PAPER, 8)
    assert (batch.prompts_per_generation, batch.completions_per_prompt) == (128, 8)
    assert (batch.prompts_per_optimizer_step, batch.optimizer_steps_per_generation) == (32, 4)
    assert batch.describe().startswith("8 processes x 4 sequences per micro-step; 128 prompts x 8 completions")
    by_size = {**PAPER, "steps_per_generation": None, "generation_batch_size": 1024}
    assert batch_plan(by_size, 8) == batch
    # Without either, TRL generates once per optimizer step.
    assert batch_plan({**PAPER, "steps_per_generation": None}, 8).optimizer_steps_per_generation == 1


def test_every_batch_problem_is_reported_at_once():
    settings = {**PAPER, "steps_per_generation": 12, "per_device_eval_batch_size": 3}
    problems = plan_problems(settings, 3)
    assert len(problems) == 3
    assert problems[0] == whole_group_problem(4, 3, 8)
    assert "steps_per_generation 12 is not a multiple of gradient_accumulation_steps 8" in problems[1]
    assert "per_device_eval_batch_size 3 x 3 processes = 9 is not a multiple of num_generations_eval 8" in problems[2]
    with pytest.raises(PlanError) as refused:
        batch_plan(settings, 3)
    assert refused.value.problems == problems and str(refused.value) == "\n".join(problems)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"generation_batch_size": 1024}, "not both"),
        ({"steps_per_generation": None, "generation_batch_size": 1000}, "generation_batch_size 1000 is not a multiple"),
        ({"gradient_accumulation_steps": 3, "steps_per_generation": 12}, "12 sequences per optimizer step"),
    ],
)
def test_batch_problems_name_the_setting(change, message):
    problems = plan_problems({**PAPER, **change}, 1 if "gradient_accumulation_steps" in change else 8)
    assert any(message in problem for problem in problems), problems


def test_whole_groups_are_needed_by_real_losses_and_whole_groups_per_step_only():
    # 2 processes x 2 sequences: a group of 8 spans two micro-steps.
    settings = {**PAPER, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 2, "steps_per_generation": 4}
    for loss in REAL_LOSS_TYPES:
        assert plan_problems({**settings, "loss_type": loss, "eval_strategy": "no"}, 2) == [
            whole_group_problem(2, 2, 8)
        ]
    grpo = {**settings, "loss_type": "grpo", "eval_strategy": "no", "max_steps": 4, "save_steps": 4}
    assert plan_problems(grpo, 2) == []
    assert batch_plan(grpo, 2).prompts_per_optimizer_step == 1
    # The baselines' whole-group setting takes the same rule, in the same words as REALConfig's.
    assert plan_problems({**grpo, "whole_groups_per_step": True}, 2) == [whole_group_problem(2, 2, 8)]
    with pytest.raises(ValueError) as refused_by_config:
        REALConfig(
            output_dir="out", loss_type="grpo", whole_groups_per_step=True, per_device_train_batch_size=2,
            gradient_accumulation_steps=2, num_generations=4, report_to=[],
        )  # fmt: skip
    assert str(refused_by_config.value) == whole_group_problem(2, 1, 4)


def test_plan_says_how_generation_batches_are_cut():
    layout = {**PAPER, "loss_type": "grpo"}
    shuffled = RunPlan.from_settings(layout, ZERO2, dataset_size=40_315).describe()
    assert "layout: TRL's per-row shuffle: a group's completions spread over the optimizer steps" in shuffled
    for settings in (PAPER, {**layout, "whole_groups_per_step": True}):
        text = RunPlan.from_settings(settings, ZERO2, dataset_size=40_315).describe()
        assert "layout: whole groups in every micro-step, so every optimizer step holds whole groups" in text


def test_eval_batch_is_checked_only_when_evaluating():
    settings = {**PAPER, "num_generations_eval": 16}
    expected = (
        "batch arithmetic does not divide for 8 processes: per_device_eval_batch_size 5 x 8 processes = 40 is not a "
        "multiple of num_generations_eval 16; change per_device_eval_batch_size"
    )
    assert plan_problems(settings, 8) == [expected]
    assert plan_problems({**settings, "eval_strategy": "no"}, 8) == []
    # Without num_generations_eval, validation uses num_generations.
    assert plan_problems({**settings, "num_generations_eval": None, "per_device_eval_batch_size": 1}, 8) == []


# -- schedule -------------------------------------------------------------------------------------------


def test_checkpoints_validations_and_the_end_fall_on_generation_batches():
    assert schedule_problems(PAPER, 4) == []
    problems = schedule_problems({**PAPER, "save_steps": 90, "eval_steps": 6, "max_steps": 5601}, 4)
    assert [p.split()[0] for p in problems] == ["max_steps", "save_steps", "eval_steps"]
    assert "set save_steps to a multiple of 4 (e.g. 88)" in problems[1]
    assert "set eval_steps to a multiple of 4 (e.g. 8)" in problems[2]


def test_schedule_reads_intervals_as_transformers_does():
    # eval_steps unset: validation follows logging_steps.
    assert schedule_problems({**PAPER, "eval_steps": None, "logging_steps": 3}, 4)[0].startswith("eval_steps 3 ")
    # Below 1: a fraction of max_steps (0.01 x 5600 = 56, a multiple of 4; 0.001 x 5600 = 5.6 -> 6, not).
    assert schedule_problems({**PAPER, "save_steps": 0.01}, 4) == []
    assert schedule_problems({**PAPER, "save_steps": 0.001}, 4)[0].startswith("save_steps 6 ")
    # Other strategies, and training by epochs, have no step count to check.
    relaxed = {**PAPER, "save_strategy": "epoch", "eval_strategy": "no", "save_steps": 7, "eval_steps": 7}
    assert schedule_problems({**relaxed, "max_steps": -1}, 4) == []


def test_batch_problems_come_before_schedule_problems():
    # With no batch plan there is no generation batch to check the schedule against.
    assert plan_problems({**PAPER, "save_steps": 7, "eval_strategy": "no"}, 3) == [whole_group_problem(4, 3, 8)]
    assert len(plan_problems({**PAPER, "save_steps": 7}, 8)) == 1


# -- the whole plan --------------------------------------------------------------------------------------


def test_run_plan_says_steps_generation_batches_and_epochs():
    text = RunPlan.from_settings(PAPER, ZERO2, dataset_size=40_315).describe()
    assert "length: 5,600 optimizer steps = 1,400 generation batches = 4.4 epochs of 40,315 problems" in text
    assert "checkpoints: every 80 optimizer steps = 20 generation batches" in text
    assert "validation: every 80 optimizer steps = 20 generation batches" in text
    assert "engine: DeepSpeed ZeRO-2, 8 processes, mixed precision bf16" in text
    assert "precision: weights loaded as bfloat16, stepped as a float32 master copy; optimizer state float32" in text
    assert "changed" not in text


def test_run_plan_length_without_max_steps_or_a_known_size():
    by_epochs = {**PAPER, "max_steps": -1, "num_train_epochs": 2, "save_strategy": "no", "eval_strategy": "no"}
    run = RunPlan.from_settings(by_epochs, ZERO2, dataset_size=1_000)
    assert run.optimizer_steps == 63  # 2 x 1,000 prompts / 32 per optimizer step, rounded up
    assert "length: 2 epochs of 1,000 problems (deepscaler) = about 63 optimizer steps" in run.describe()
    assert "checkpoints: none" in run.describe() and "validation: none" in run.describe()
    local = RunPlan.from_settings({**by_epochs, "dataset_path": "train.parquet"}, ZERO2)
    assert local.optimizer_steps is None and "size unknown" in local.describe()
    no_epochs = RunPlan.from_settings({**PAPER, "dataset_path": "train.parquet"}, ZERO2).describe()
    assert "length: 5,600 optimizer steps = 1,400 generation batches\n" in no_epochs


def test_run_plan_refuses_with_every_problem():
    with pytest.raises(PlanError) as refused:
        RunPlan.from_settings({**PAPER, "per_device_eval_batch_size": 3}, Engine("ddp", 3, "bf16"), dataset_size=1)
    assert len(refused.value.problems) == 2


def test_known_dataset_sizes_come_from_the_registry():
    assert known_dataset_size({"dataset_name": "deepscaler"}) == 40_315
    assert known_dataset_size({"dataset_name": "dapo17k", "max_train_samples": 100}) == 100
    assert known_dataset_size({"dataset_name": "deepscaler", "dataset_path": "copy.parquet"}) is None


# -- engines ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({}, Engine("single")),
        ({"WORLD_SIZE": "2"}, Engine("ddp", 2)),  # torchrun
        ({"WORLD_SIZE": "8", "ACCELERATE_MIXED_PRECISION": "bf16"}, Engine("ddp", 8, "bf16")),
        (
            {"WORLD_SIZE": "8", "ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3",
             "ACCELERATE_MIXED_PRECISION": "bf16"},
            Engine("deepspeed", 8, "bf16", zero_stage=3),
        ),
        ({"WORLD_SIZE": "4", "ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2"}, Engine("fsdp", 4, fsdp_version=2)),
        # What accelerate exports for zero2.yaml: the JSON's path, no stage, mixed precision "no" (checked by hand
        # with accelerate 1.15): the stage, the dtypes and the mixed precision come from the JSON.
        (
            {"WORLD_SIZE": "8", "ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_MIXED_PRECISION": "no",
             "ACCELERATE_DEEPSPEED_CONFIG_FILE": "accelerate_configs/deepspeed_zero2.json"},
            dataclasses.replace(SHIPPED_ZERO[2], source="environment"),
        ),
    ],
)  # fmt: skip
def test_engine_from_environment(environ, expected):
    assert engine_from_environment(environ) == expected


@pytest.mark.parametrize(
    "name, expected",
    [
        ("cpu", Engine("single", 1, "no")),
        ("ddp", Engine("ddp", 8, "bf16")),
        ("zero2", SHIPPED_ZERO[2]),
        ("zero3", SHIPPED_ZERO[3]),
        ("multinode_zero2", dataclasses.replace(SHIPPED_ZERO[2], num_processes=16)),
        ("fsdp2", Engine("fsdp", 8, "bf16", fsdp_version=2)),
    ],
)
def test_engine_from_accelerate_config(name, expected):
    path = f"accelerate_configs/{name}.yaml"
    assert engine_from_accelerate_config(path) == dataclasses.replace(expected, source=path)


def test_deepspeed_config_files_are_found_from_another_directory(tmp_path, monkeypatch):
    """accelerate reads deepspeed_config_file relative to where it is launched (the repository root); a dry run
    from elsewhere still finds the shipped file next to the accelerate config's folder."""
    repository = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    engine = engine_from_accelerate_config(str(repository / "accelerate_configs/zero3.yaml"))
    assert engine.deepspeed_config_file == str(repository / "accelerate_configs/deepspeed_zero3.json")
    assert (engine.zero_stage, engine.grad_accum_dtype) == (3, "float32")


def test_unusable_accelerate_configs_are_refused_in_one_line(tmp_path):
    deepspeed = "distributed_type: DEEPSPEED\ndeepspeed_config:\n  deepspeed_config_file: "
    bad = {"bad.yaml": "a: [1", "list.yaml": "- 1", "tpu.yaml": "distributed_type: XLA"}
    bad |= {"no_json.yaml": deepspeed + "missing.json", "bad_json.yaml": deepspeed + f"{tmp_path}/bad.json"}
    bad |= {"dtype.yaml": deepspeed + f"{tmp_path}/dtype.json"}
    for name, text in bad.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "dtype.json").write_text('{"communication_data_type": "int8"}')
    expected = {"missing.yaml": "cannot read", "bad.yaml": "not valid YAML", "list.yaml": "must be a YAML mapping"}
    expected["tpu.yaml"] = "distributed_type XLA is not supported"
    expected["no_json.yaml"] = "names DeepSpeed config missing.json, which cannot be read"
    expected["bad_json.yaml"] = "is not valid JSON"
    expected["dtype.yaml"] = "unknown dtype 'int8'; use fp32, bf16 or fp16"
    for name, message in expected.items():
        with pytest.raises(ValueError, match=message) as refused:
            engine_from_accelerate_config(str(tmp_path / name))
        assert "\n" not in str(refused.value)


# -- precision --------------------------------------------------------------------------------------------

DDP = Engine("ddp", 8, "bf16")
FSDP2 = Engine("fsdp", 8, "bf16", fsdp_version=2)


@pytest.mark.parametrize(
    "engine, dtype, bf16, fp16, expected",
    [
        # DDP and one process step the parameters themselves: 16-bit weights are loaded in float32.
        (DDP, "bfloat16", True, False, ("float32", True, False, False, "bfloat16")),
        (Engine("single"), "bfloat16", None, False, ("float32", True, False, False, "bfloat16")),
        (DDP, "auto", True, False, ("float32", True, False, False, "bfloat16")),
        (DDP, None, True, False, ("float32", True, False, False, "bfloat16")),
        # ... and mixed precision is turned on, in the weights' own 16-bit type, when it was off.
        (Engine("ddp", 8), "bfloat16", False, False, ("float32", True, False, False, "bfloat16")),
        (Engine("ddp", 8), "float16", False, False, ("float32", False, True, False, "float16")),
        # accelerate's mixed precision counts when TrainingArguments' flags are off.
        (DDP, "bfloat16", False, False, ("float32", False, False, False, "bfloat16")),
        # float32 weights need nothing.
        (DDP, "float32", True, False, ("float32", True, False, False, "bfloat16")),
        (Engine("ddp", 8), "float32", False, False, ("float32", False, False, False, "float32")),
        # DeepSpeed ZeRO keeps float32 partitions of the weights, with or without mixed precision.
        (ZERO2, "bfloat16", True, False, ("bfloat16", True, False, True, "bfloat16")),
        (Engine("deepspeed", 8, zero_stage=3), "bfloat16", False, False, ("bfloat16", False, False, True, "bfloat16")),
        # DeepSpeed without ZeRO keeps them only under bf16/fp16; FSDP upcasts only under mixed precision.
        (Engine("deepspeed", 8), "bfloat16", False, False, ("bfloat16", True, False, True, "bfloat16")),
        (FSDP2, "bfloat16", True, False, ("bfloat16", True, False, True, "bfloat16")),
        (Engine("fsdp", 8, fsdp_version=2), "bfloat16", False, False, ("bfloat16", True, False, True, "bfloat16")),
        (Engine("fsdp", 8, fsdp_version=2), "float32", False, False, ("float32", False, False, False, "float32")),
    ],
)  # fmt: skip
def test_precision_never_steps_16_bit_weights_without_a_float32_copy(engine, dtype, bf16, fp16, expected):
    precision = decide_precision(engine, dtype, bf16, fp16)
    decided = (precision.dtype, precision.bf16, precision.fp16, precision.master_copy, precision.compute_dtype)
    assert decided == expected
    changed = (precision.dtype, precision.bf16, precision.fp16) != (dtype, not fp16 if bf16 is None else bf16, fp16)
    assert bool(precision.note) == changed
    assert precision.overrides() == {"dtype": expected[0], "bf16": expected[1], "fp16": expected[2]}


def test_precision_note_says_what_changed_and_why():
    note = decide_precision(Engine("ddp", 8), "bfloat16", False).note
    assert note.startswith("bf16 on, dtype bfloat16 -> float32: DDP would step bfloat16 weights with no float32 copy")
    assert "\n" not in note
    text = RunPlan.from_settings(PAPER, DDP, dataset_size=40_315).describe()
    assert "precision: weights loaded as float32; optimizer state float32; compute bfloat16" in text
    assert "precision changed: dtype bfloat16 -> float32" in text


def test_plan_on_a_config_and_on_this_launch(monkeypatch):
    """What --dry_run prints: the engine of an accelerate config, or of the environment."""
    text = RunPlan.from_settings(PAPER, engine_from_accelerate_config("accelerate_configs/zero3.yaml")).describe()
    assert (
        "engine: DeepSpeed ZeRO-3, 8 processes, mixed precision from bf16 / fp16 (accelerate_configs/zero3.yaml, "
        "accelerate_configs/deepspeed_zero3.json)"
    ) in text
    assert "4.4 epochs of 40,315 problems (deepscaler)" in text
    for name in ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP", "ACCELERATE_MIXED_PRECISION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "8")
    text = RunPlan.from_settings(PAPER, engine_from_environment()).describe()
    assert "engine: DDP, 8 processes, mixed precision no (environment)" in text


def test_counts_are_singular_or_plural():
    settings = {**PAPER, "per_device_train_batch_size": 1, "gradient_accumulation_steps": 8, "steps_per_generation": 8}
    settings.update(loss_type="grpo", max_steps=1, save_steps=1, eval_strategy="no")
    text = RunPlan.from_settings(settings, Engine("single"), dataset_size=1).describe()
    assert "batch: 1 process x 1 sequence per micro-step; 1 prompt x 8 completions per generation batch;" in text
    assert "1 prompt per optimizer step; 1 optimizer step per generation batch" in text
    assert "length: 1 optimizer step = 1 generation batch = 1.0 epochs of 1 problem" in text
    assert "engine: 1 process, mixed precision no" in text


# -- gradients: the dtype they are reduced and accumulated in ---------------------------------------------


def _gradients(engine: Engine, dtype="bfloat16", bf16=True):
    return gradient_precision(engine, decide_precision(engine, dtype, bf16))


@pytest.mark.parametrize("stage", [2, 3])
def test_shipped_deepspeed_configs_reduce_and_accumulate_in_float32(stage):
    gradients = _gradients(SHIPPED_ZERO[stage])
    assert (gradients.reduce_dtype, gradients.accumulate_dtype, gradients.float32) == ("float32", "float32", True)
    text = RunPlan.from_settings(PAPER, SHIPPED_ZERO[stage], dataset_size=1).describe()
    assert (
        "gradients: reduced in float32, accumulated in float32 (DeepSpeed's communication_data_type and "
        f"data_types.grad_accum_dtype, accelerate_configs/deepspeed_zero{stage}.json)"
    ) in text


def test_deepspeed_defaults_follow_the_16_bit_weights():
    gradients = _gradients(ZERO2)  # an inline accelerate config: no DeepSpeed file, DeepSpeed's defaults
    assert (gradients.reduce_dtype, gradients.accumulate_dtype) == ("bfloat16", "bfloat16")
    assert "not set: DeepSpeed's defaults follow the 16-bit weights" in gradients.how
    assert "set communication_data_type fp32 and data_types.grad_accum_dtype fp32" in gradients.limitation
    # One of the two keys moves only its half (DeepSpeed reads them separately).
    half = _gradients(dataclasses.replace(ZERO2, communication_dtype="float32"))
    assert (half.reduce_dtype, half.accumulate_dtype) == ("float32", "bfloat16")
    # Without mixed precision DeepSpeed's weights and so its gradients are float32.
    assert _gradients(dataclasses.replace(ZERO2, mixed_precision="no"), dtype="float32", bf16=False).float32


def test_deepspeed_without_zero_cannot_accumulate_16_bit_gradients_in_float32():
    zero0 = dataclasses.replace(SHIPPED_ZERO[2], zero_stage=0)
    gradients = _gradients(zero0)
    assert (gradients.reduce_dtype, gradients.accumulate_dtype) == ("float32", "float32")
    assert "DeepSpeed without ZeRO refuses data_types.grad_accum_dtype float32 with bfloat16 weights" in (
        gradients.problem
    )
    # Without the key it starts, reduces in float32 and accumulates in bf16: the plan says it cannot do better.
    default_accumulation = _gradients(dataclasses.replace(zero0, grad_accum_dtype=None))
    assert not default_accumulation.problem and default_accumulation.accumulate_dtype == "bfloat16"
    assert "DeepSpeed without ZeRO cannot accumulate bfloat16 weights' gradients in float32" in (
        default_accumulation.limitation
    )
    text = RunPlan.from_settings(PAPER, dataclasses.replace(zero0, grad_accum_dtype=None), dataset_size=1).describe()
    assert "gradients: reduced in float32, accumulated in bfloat16" in text and "use ZeRO-1 or above" in text


def test_fsdp2_gradients_are_raised_to_float32_by_the_launcher():
    gradients = _gradients(FSDP2)
    assert gradients.float32 and "real_trl.launch.fsdp.reduce_fsdp2_gradients_in_float32" in gradients.how
    assert "after every micro-step" in gradients.how
    fsdp1 = _gradients(Engine("fsdp", 8, "bf16", fsdp_version=1))
    assert (fsdp1.reduce_dtype, fsdp1.accumulate_dtype) == ("bfloat16", "bfloat16")
    assert "on FSDP2 with bf16 only" in fsdp1.limitation
    assert _gradients(Engine("fsdp", 8, fsdp_version=2), dtype="float32", bf16=False).float32


def test_ddp_and_one_process_hold_float32_gradients():
    ddp = _gradients(DDP)  # bfloat16 weights are loaded in float32 on DDP (decide_precision)
    assert (ddp.reduce_dtype, ddp.accumulate_dtype) == ("float32", "float32")
    assert "DDP reduces the float32 weights' own gradients once per optimizer step" in ddp.how
    single = _gradients(Engine("single"))
    assert (single.reduce_dtype, single.accumulate_dtype) == (None, "float32")
    one_process = {**PAPER, "per_device_train_batch_size": 32, "per_device_eval_batch_size": 40}
    text = RunPlan.from_settings(one_process, Engine("single"), dataset_size=1).describe()
    assert "gradients: not reduced (one process), accumulated in float32" in text


def test_plan_names_the_logprob_path_and_its_tile():
    def line(**settings):
        text = RunPlan.from_settings({**PAPER, **settings}, ZERO2, dataset_size=1).describe()
        return next(row for row in text.splitlines() if row.startswith("log-probs: "))

    head = "log-probs: TRL's fused LM head (no full logits), tiles of "
    assert line() == head + "4,096 tokens (Triton kernel on GPU; logprob_chunk_size automatic)"
    assert line(use_cpu=True) == head + "256 tokens (torch fallback on CPU; logprob_chunk_size automatic)"
    assert (
        line(use_cpu=True, logprob_chunk_size=0) == head + "4,096 tokens (torch fallback on CPU; logprob_chunk_size 0)"
    )
    assert line(logprob_chunk_size=1024) == head + "1,024 tokens (Triton kernel on GPU; logprob_chunk_size 1024)"
    assert line(loss_type="grpo", use_cpu=True) == (
        head + "4,096 tokens (torch fallback on CPU; GRPOTrainer's, for TRL's loss types)"
    )
