"""One launcher for every recipe: YAML recipe + command-line overrides -> checks -> REALTrainer.

    accelerate launch --config_file accelerate_configs/zero2.yaml scripts/train.py \
        --config recipes/DeepSeek-R1-Distill-Qwen-1.5B/real_deepscaler.yaml --learning_rate 1e-6

`check_launch` reads the recipe and the flags (`recipe`) and checks everything it can see before
anything is loaded: field names and value types, data and reward names, the batch arithmetic and step
schedule on the launched processes (`plan`), the run folder (`run_dir`), and what this machine must have
(`machine_problems`: the model, `real_trl.models`; optional engines, `preflight`). Every problem is reported
together, one line each, with exit code 2. A dry run (`--dry_run`) prints the plan anywhere: what the
machine lacks is listed under it as notes instead. `build_arguments` applies the plan's precision decision
(float32 master weights) and builds the config dataclasses; `train` loads the data, the rewards and the
model, runs REALTrainer (on FSDP2, with float32 gradient reduction: `fsdp`) and leaves the model and the
whole log history (trainer_state.json) in output_dir.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from dataclasses import fields, replace

import torch
from transformers.trainer_utils import get_last_checkpoint
from trl import ModelConfig, get_peft_config, get_quantization_config

from real_trl.cli import UsageError
from real_trl.config import REALConfig
from real_trl.data import DATASET_NAMES, load_named_dataset
from real_trl.launch import preflight, run_dir
from real_trl.launch.engine import Engine, engine_from_accelerate_config, engine_from_environment
from real_trl.launch.fsdp import reduce_fsdp2_gradients_in_float32
from real_trl.launch.plan import RunPlan, plan_problems, strategy
from real_trl.launch.recipe import ScriptArguments, parse_recipe_and_flags
from real_trl.models import TINY_MODEL, load_tokenizer, model_problem
from real_trl.rewards import REWARD_NAMES, build_rewards, default_num_workers, usable_cores
from real_trl.tiny import build_tiny_model
from real_trl.trainer import REALTrainer
from real_trl.vllm_cpu import shutdown_colocated_engine

BANNER = "=" * 100


def under_a_launcher() -> bool:
    """Started by `accelerate launch` (which always exports ACCELERATE_MIXED_PRECISION) or torchrun (LOCAL_RANK)."""
    return "LOCAL_RANK" in os.environ or "ACCELERATE_MIXED_PRECISION" in os.environ


def is_main_process() -> bool:
    """Rank 0 of the launch (or the only process); `accelerate launch` and `torchrun` export RANK."""
    return os.environ.get("RANK", "0") == "0"


def check_launch(argv: list[str] | None = None, num_processes: int | None = None) -> tuple[dict, RunPlan]:
    """Read `--config RECIPE.yaml` plus overrides and check everything visible before loading anything.

    Returns the settings (every field by name, as written) and the run's plan; raises UsageError listing
    every problem. `num_processes` overrides the launch's (for checking a recipe as if launched on N). With
    `--dry_run` what this machine lacks (`machine_problems`) is not a problem: the dry run lists it.
    """
    quiet_known_noise()
    settings = vars(parse_recipe_and_flags(sys.argv[1:] if argv is None else list(argv)))
    try:
        engine = launch_engine(settings["accelerate_config"] if settings["dry_run"] else None)
    except ValueError as error:  # an unreadable accelerate config
        raise UsageError(str(error)) from error
    if num_processes is not None:
        engine = replace(engine, num_processes=num_processes)
    problems = name_problems(settings) + plan_problems(settings, engine.num_processes)
    problems += [problem for problem in [preflight.vllm_length_problem(settings)] if problem]
    run_plan = None if problems else RunPlan.from_settings(settings, engine)
    if run_plan is not None and run_plan.gradients.problem:  # a setting the engine refuses at start-up
        problems.append(run_plan.gradients.problem)
    if is_main_process():  # the others must not look at the folder the main process is already preparing
        problems += run_dir.output_dir_problems(
            settings["output_dir"],
            run_dir.key_settings(settings, run_plan.batch) if run_plan else None,
            resume=settings["resume"],
            overwrite=settings["overwrite_output_dir"],
            allow_changed=settings["allow_changed_settings"],
            resume_from_checkpoint=settings["resume_from_checkpoint"],
        )
    if settings["model_name_or_path"] is None:
        problems.append(f"model_name_or_path is not set: name a Hub id, a local folder or {TINY_MODEL}")
    if not settings["dry_run"]:
        problems += machine_problems(settings)
    if problems:
        raise UsageError(*problems)
    return settings, run_plan


def machine_problems(settings: dict) -> list[str]:
    """What this machine lacks for the run: vLLM when the recipe uses it, the model (on disk, in the cache or
    on the Hub), and, listed by dry runs only, a GPU for a recipe that does not set use_cpu. A launch refuses
    the first two; a dry run lists them all as notes under its plan."""
    lacks = [preflight.vllm_problem(settings["use_vllm"])]
    if settings["model_name_or_path"] is not None:
        lacks.append(model_problem(settings["model_name_or_path"], settings["model_revision"]))
    if settings["dry_run"]:
        lacks.append(preflight.gpu_problem(settings["use_cpu"]))
    lacks += preflight.vllm_cpu_problems(settings)  # server mode and sleep mode need a GPU
    return [problem for problem in lacks if problem]


def launch_engine(accelerate_config: str | None = None) -> Engine:
    """The engine this launch trains on: from `accelerate_config` (a dry run's), else from the environment."""
    return engine_from_accelerate_config(accelerate_config) if accelerate_config else engine_from_environment()


def build_arguments(settings: dict, run_plan: RunPlan) -> tuple[ScriptArguments, REALConfig, ModelConfig]:
    """The three dataclasses of the run, with the plan's precision decision applied (float32 master weights)."""
    if run_plan.precision.note:  # the settings as written would step 16-bit weights with no float32 copy
        settings = {**settings, **run_plan.precision.overrides()}
    try:
        return tuple(_build(dataclass_type, settings) for dataclass_type in (ScriptArguments, REALConfig, ModelConfig))
    except ValueError as error:  # a __post_init__ check (ours or TRL's): keep its message, drop the traceback
        raise UsageError(" ".join(str(error).split())) from error


def parse_args(
    argv: list[str] | None = None, num_processes: int | None = None
) -> tuple[ScriptArguments, REALConfig, ModelConfig]:
    """`check_launch` then `build_arguments`: the run's (ScriptArguments, REALConfig, ModelConfig)."""
    return build_arguments(*check_launch(argv, num_processes))


def _build(dataclass_type, settings: dict):
    return dataclass_type(**{f.name: settings[f.name] for f in fields(dataclass_type) if f.init and f.name in settings})


def name_problems(settings: dict) -> list[str]:
    """Dataset and reward names must be known; validation needs a validation set."""
    problems = []
    for option in ("dataset_name", "eval_dataset_name"):
        name, path_option = settings[option], option.replace("_name", "_path")
        # With a local path the name only labels the data (and picks <name>.parquet inside a folder).
        if name is not None and name not in DATASET_NAMES and settings[path_option] is None:
            problems.append(
                f"unknown {option} {name!r}: choose one of {', '.join(DATASET_NAMES)}, or give "
                f"{path_option} to load a local file"
            )
    unknown = [name for name in settings["reward_funcs"] if name not in REWARD_NAMES]
    if unknown:
        problems.append(f"unknown reward function(s) {', '.join(unknown)}: choose from {', '.join(REWARD_NAMES)}")
    if strategy(settings, "eval_strategy") != "no" and settings["eval_dataset_name"] is None:
        problems.append(
            f"eval_strategy is {settings['eval_strategy']!r} but eval_dataset_name is not set: name a "
            "validation set or set eval_strategy to 'no'"
        )
    return problems


def quiet_known_noise() -> None:
    """Silence messages known to be harmless that every run would otherwise print, once per process."""
    # TRL 1.16 still calls transformers' pre-v6 gradient_checkpointing names (three warnings per generation).
    warnings.filterwarnings("ignore", message=r".*`\w*gradient_checkpointing\w*` is deprecated", category=FutureWarning)
    # DeepSpeed names the accelerator it picked on every process (and warns on CPU that it found no GPU).
    logging.getLogger("DeepSpeed").addFilter(_drop_accelerator_line)
    logging.getLogger("transformers.trainer").addFilter(_drop_tied_lm_head_warning)


def _drop_accelerator_line(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(("Setting ds_accelerator to", "Setting accelerator to CPU"))


def _drop_tied_lm_head_warning(record: logging.LogRecord) -> bool:
    # A tied-embedding model saves no lm_head.weight (it is the embedding); the resumed trainer reties it.
    return "missing keys in the checkpoint model loaded: ['lm_head.weight']" not in record.getMessage()


def cpu_threads_per_process(cores: int, local_processes: int, reward_workers: int) -> int:
    """Threads for torch on CPU: the cores shared among the node's training processes and their reward workers."""
    return max(1, cores // (local_processes * (1 + reward_workers)))


def set_cpu_threads() -> str | None:
    """On CPU, unless the user set OMP_NUM_THREADS, give torch its share of the cores; says what it set."""
    if _user_set_threads():
        return None
    cores, local, workers = usable_cores(), int(os.environ.get("LOCAL_WORLD_SIZE", "1")), default_num_workers()
    threads = cpu_threads_per_process(cores, local, workers)
    torch.set_num_threads(threads)
    return (
        f"cpu: {threads} torch thread(s) per process ({cores} cores, {local} process(es) here, {workers} reward "
        "worker(s) each); set OMP_NUM_THREADS to choose"
    )


def _user_set_threads() -> bool:
    # accelerate and torchrun set OMP_NUM_THREADS for their workers themselves (accelerate to cores / processes,
    # too many for a loaded machine), so under a launcher the user's choice is in the launcher's own starting
    # environment (the parent process), not in ours.
    if not under_a_launcher():
        return "OMP_NUM_THREADS" in os.environ
    try:
        with open(f"/proc/{os.getppid()}/environ", "rb") as f:
            return any(entry.startswith(b"OMP_NUM_THREADS=") for entry in f.read().split(b"\0"))
    except OSError:
        return "OMP_NUM_THREADS" in os.environ


# -- the run ---------------------------------------------------------------------------------------


def load_datasets(script_args: ScriptArguments, training_args: REALConfig, tokenizer) -> tuple:
    """The training set and the validation set (None when validation is off), prompts filtered by length."""
    train = _load_dataset(script_args, "", script_args.max_train_samples, tokenizer, training_args.seed)
    if training_args.eval_strategy == "no":
        return train, None
    return train, _load_dataset(script_args, "eval_", script_args.max_eval_samples, tokenizer, training_args.seed + 1)


def _load_dataset(script_args: ScriptArguments, prefix: str, limit: int | None, tokenizer, seed: int):
    name, path, split = (getattr(script_args, f"{prefix}dataset_{key}") for key in ("name", "path", "split"))
    try:
        dataset = load_named_dataset(
            name, path, split=split, tokenizer=tokenizer, max_prompt_length=script_args.max_prompt_length, seed=seed
        )
    except ValueError as error:  # missing columns, unreadable or empty files: the loader's message names the fix
        raise UsageError(" ".join(str(error).split())) from error
    return dataset.select(range(min(limit, len(dataset)))) if limit is not None else dataset


def trainer_model(model_args: ModelConfig, training_args: REALConfig, tokenizer):
    """REALTrainer's `model` argument: the tiny model, built here, or the name TRL loads with our settings."""
    if model_args.model_name_or_path == TINY_MODEL:
        model = build_tiny_model(tokenizer, seed=training_args.seed)  # same seed: every process starts identical
        model = model if model_args.dtype in (None, "auto") else model.to(getattr(torch, model_args.dtype))
        if training_args.use_vllm:  # vLLM loads its engine's weights from a folder
            model.name_or_path = model.config._name_or_path = save_for_vllm(model, tokenizer, training_args)
        return model
    init_kwargs = {
        "revision": model_args.model_revision,
        "dtype": model_args.dtype,
        "attn_implementation": model_args.attn_implementation,
        "trust_remote_code": training_args.trust_remote_code,
    }
    training_args.model_init_kwargs = {**init_kwargs, **(training_args.model_init_kwargs or {})}
    return model_args.model_name_or_path


def save_for_vllm(model, tokenizer, training_args: REALConfig) -> str:
    """Save the built-in tiny model (as built, before training) to output_dir/real_trl.tiny for vLLM to load; the
    main process writes it while the others wait. Returns the folder."""
    folder = os.path.join(training_args.output_dir, TINY_MODEL)
    with training_args.main_process_first(local=False, desc="saving the tiny model for vLLM"):
        if training_args.process_index == 0:
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
    return folder


def last_checkpoint(output_dir: str) -> str | None:
    """The newest checkpoint-N folder in output_dir, or None."""
    return get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None


def train(script_args: ScriptArguments, training_args: REALConfig, model_args: ModelConfig, run_plan: RunPlan):
    """Prepare output_dir, load the data, rewards and model, train, and save the model and the log history."""
    is_main = training_args.process_index == 0
    lines = run_plan.describe().splitlines()
    if training_args.use_cpu or not torch.cuda.is_available():
        lines += [set_cpu_threads() or f"cpu: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')} (yours)"]
    if is_main:
        print("\n".join(f"[real_trl] {line}" for line in lines), flush=True)
    settings = run_dir.key_settings({**vars(script_args), **vars(training_args), **vars(model_args)}, run_plan.batch)
    with training_args.main_process_first(desc="preparing output_dir"):
        if is_main:
            run_dir.prepare_output_dir(training_args.output_dir, settings, script_args.overwrite_output_dir)
    tokenizer = load_tokenizer(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
    )
    with training_args.main_process_first(desc="loading datasets"):  # the others then read the main one's cache
        train_dataset, eval_dataset = load_datasets(script_args, training_args, tokenizer)
    checkpoint = training_args.resume_from_checkpoint
    if checkpoint is None and script_args.resume:
        checkpoint = last_checkpoint(training_args.output_dir)
        if is_main:
            found = f"resuming from {checkpoint}" if checkpoint else "no checkpoint yet, starting from scratch"
            print(f"[real_trl] --resume: {found} ({training_args.output_dir})", flush=True)
    trainer = REALTrainer(
        model=trainer_model(model_args, training_args, tokenizer),
        reward_funcs=build_rewards(script_args.reward_funcs, require_think=script_args.require_think),
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        quantization_config=get_quantization_config(model_args),
    )
    reduce_fsdp2_gradients_in_float32(trainer)  # the plan's gradients line; FSDP2 with bf16 only
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(training_args.output_dir)
    trainer.save_state()  # trainer_state.json with the whole log history, even when no checkpoint was saved
    trainer.accelerator.wait_for_everyone()  # every process done writing before any of them tears down
    shutdown_colocated_engine(trainer)  # vLLM on CPU: before end_training, which its exit would otherwise follow
    if trainer.accelerator.num_processes > 1:
        trainer.accelerator.end_training()  # release the process group: exiting with gloo's threads running can abort
    if is_main:
        print(f"[real_trl] saved the model and trainer_state.json to {training_args.output_dir}", flush=True)
    return trainer


def main(argv: list[str] | None = None) -> None:
    """`scripts/train.py`: check, then train, or with --dry_run print the plan; mistakes exit with code 2."""
    try:
        settings, run_plan = check_launch(argv)
        if settings["dry_run"]:
            if is_main_process():
                print(dry_run_report(run_plan, machine_problems(settings)))
            return
        train(*build_arguments(settings, run_plan), run_plan)
    except UsageError as error:
        report(error.problems)
        sys.exit(2)


def dry_run_report(run_plan: RunPlan, lacks: list[str]) -> str:
    """The plan, what this machine lacks for the run (a launch here would stop on it), and the dry run's last line."""
    lines = [run_plan.describe()]
    if lacks:
        lines.append("on this machine (a launch here would stop on these; the plan does not depend on them):")
        lines += [f"  - {problem}" for problem in lacks]
    lines.append("dry run: nothing was loaded; run again without --dry_run to train")
    return "\n".join(lines)


def report(problems: list[str]) -> None:
    """Print the problems once (every process finds the same ones); under a launcher, framed so they stand out
    above the launcher's own traceback."""
    if not is_main_process():
        return
    if len(problems) == 1:
        lines = [f"error: {problems[0]}"]
    else:
        lines = [f"error: {len(problems)} problems:", *(f"  - {problem}" for problem in problems)]
    if under_a_launcher():
        after = "(nothing was loaded; whatever the launcher prints after this only reports the exit code, 2)"
        lines = [BANNER, *lines, after, BANNER]
    print("\n".join(lines), file=sys.stderr, flush=True)
