"""One launcher for every recipe: YAML recipe + command-line overrides -> REALTrainer.

    accelerate launch --config_file accelerate_configs/zero2.yaml scripts/train.py \
        --config recipes/DeepSeek-R1-Distill-Qwen-1.5B/real_deepscaler.yaml --learning_rate 1e-6

The recipe and the overrides are parsed with TRL's `TrlParser` into three dataclasses: `ScriptArguments`
(data, rewards, resumption), `REALConfig` (everything GRPOConfig has, plus REAL's) and `trl.ModelConfig`
(dtype, attention, LoRA). Every mistake we can see from the arguments alone (an unknown field, a
dataset or reward name not in the registry, a batch that does not divide over the launched processes)
stops the run with one line before any model or dataset is loaded.
"""

from __future__ import annotations

import difflib
import operator
import os
import random
import sys
from dataclasses import dataclass, field

import yaml
from trl import ModelConfig, TrlParser

from real_trl.config import REAL_LOSS_TYPES, REALConfig

# `model_name_or_path: real_trl.tiny` builds real_trl.tiny's random tiny Qwen2 in memory (same seed on
# every process, so all ranks start identical): the smoke recipe runs with nothing on disk or the Hub.
TINY_MODEL = "real_trl.tiny"
# A bundled toy set (small arithmetic with integer answers), generated in code, for the smoke recipe.
TOY_DATASET = "toy"
REWARD_FUNCS = ("math_reward", "think_format_reward", "digit_reward")


class LaunchError(ValueError):
    """A mistake in the recipe or the command line; `main` prints it as one line and exits with code 2."""


@dataclass
class ScriptArguments:
    """What the launcher needs beyond `REALConfig` and `ModelConfig`: data, rewards and resumption."""

    dataset_name: str = field(
        default="deepscaler",
        metadata={"help": "Training set from the registry (real_trl.data.TRAIN_DATASETS: 'deepscaler', 'dapo17k'), or "
                  "'toy' (tiny arithmetic set bundled for smoke runs)."},
    )
    dataset_path: str | None = field(
        default=None,
        metadata={"help": "Load the training set from this local file or folder (parquet, jsonl, json) or Hub id "
                  "instead of the registry's default Hub id."},
    )
    dataset_split: str | None = field(
        default=None, metadata={"help": "Split of the training set; default: the registry's choice."}
    )
    eval_dataset_name: str | None = field(
        default="aime24",
        metadata={"help": "Validation set from the registry (e.g. 'aime24'), or 'toy'. Needed when eval_strategy is "
                  "not 'no'; set eval_strategy to 'no' to train without validation."},
    )
    eval_dataset_path: str | None = field(
        default=None, metadata={"help": "Load the validation set from this local file or folder or Hub id."}
    )
    eval_dataset_split: str | None = field(
        default=None, metadata={"help": "Split of the validation set; default: the registry's choice."}
    )
    max_prompt_length: int | None = field(
        default=1024,
        metadata={"help": "Drop prompts longer than this many tokens under the model's chat template (the paper: "
                  "1024). TRL 1.16 has no prompt-length setting of its own, so the data loader filters."},
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Keep only the first N training problems (after filtering); for quick runs."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Keep only the first N validation problems (after filtering)."}
    )
    reward_funcs: list[str] = field(
        default_factory=lambda: ["math_reward"],
        metadata={"help": f"Reward functions by name, from {', '.join(REWARD_FUNCS)}. REAL labels a completion "
                  "positive when the weighted sum of rewards exceeds label_threshold."},
    )
    require_think: bool = field(
        default=True,
        metadata={"help": "math_reward scores only the text after the closing </think> (0 when it is missing), as "
                  "the paper's verifier does for R1-distilled models. Set false for models that do not think."},
    )
    resume: bool = field(
        default=False,
        metadata={"help": "Resume from the last checkpoint in output_dir (start fresh, with a note, when there is "
                  "none, so a requeued job can always pass it). resume_from_checkpoint=PATH picks one explicitly."},
    )


@dataclass(frozen=True)
class BatchPlan:
    """How a recipe's batch settings play out on a given number of processes."""

    num_processes: int
    completions_per_prompt: int
    sequences_per_micro_step: int
    prompts_per_optimizer_step: int
    prompts_per_generation: int
    optimizer_steps_per_generation: int

    def describe(self) -> str:
        return (
            f"batch: {self.num_processes} process{'es' if self.num_processes > 1 else ''} x "
            f"{self.sequences_per_micro_step // self.num_processes} sequences "
            f"per micro-step; {self.prompts_per_generation} prompts x {self.completions_per_prompt} completions per "
            f"generation batch; {self.prompts_per_optimizer_step} prompts per optimizer step; "
            f"{self.optimizer_steps_per_generation} optimizer steps per generation batch"
        )


def batch_plan(
    num_processes: int,
    per_device_train_batch_size: int,
    gradient_accumulation_steps: int,
    num_generations: int,
    steps_per_generation: int | None = None,
    generation_batch_size: int | None = None,
    loss_type: str = "real",
    per_device_eval_batch_size: int | None = None,
    num_generations_eval: int | None = None,
) -> BatchPlan:
    """Derive the batch plan of a recipe on `num_processes` processes, or raise LaunchError naming what to change.

    Beyond what GRPOConfig checks itself, every generation batch must be a whole number of optimizer
    steps of whole prompt groups (the paper: 4 steps of 32 prompts per batch of 128), and the REAL losses
    need whole groups in every micro-step (they couple the members of a group).
    """
    processes = f"{num_processes} process{'es' if num_processes != 1 else ''}"
    fix = (
        "rescale per_device_train_batch_size / gradient_accumulation_steps / steps_per_generation "
        "(see the note in the recipe)"
    )
    micro = per_device_train_batch_size * num_processes
    if steps_per_generation is not None and generation_batch_size is not None:
        raise LaunchError("set steps_per_generation or generation_batch_size, not both")
    if steps_per_generation is None:
        if generation_batch_size is None:
            steps_per_generation = gradient_accumulation_steps  # GRPOConfig's default
        elif generation_batch_size % micro:
            raise LaunchError(
                f"batch arithmetic does not divide for {processes}: generation_batch_size {generation_batch_size} is "
                f"not a multiple of per_device_train_batch_size {per_device_train_batch_size} x {processes} = {micro}; "
                f"{fix}"
            )
        else:
            steps_per_generation = generation_batch_size // micro
    where = f"batch arithmetic does not divide for {processes}"
    if loss_type in REAL_LOSS_TYPES and micro % num_generations:
        raise LaunchError(
            f"{where}: per_device_train_batch_size {per_device_train_batch_size} x {processes} = {micro} "
            f"sequences per micro-step is not a multiple of num_generations {num_generations} (loss_type {loss_type!r} "
            f"needs whole groups in every micro-step); {fix}"
        )
    if steps_per_generation % gradient_accumulation_steps:
        raise LaunchError(
            f"{where}: steps_per_generation {steps_per_generation} is not a multiple of gradient_accumulation_steps "
            f"{gradient_accumulation_steps} (a generation batch must be a whole number of optimizer steps); {fix}"
        )
    per_step = micro * gradient_accumulation_steps
    if per_step % num_generations:
        raise LaunchError(
            f"{where}: {per_step} sequences per optimizer step (per_device_train_batch_size x processes x "
            f"gradient_accumulation_steps) is not a multiple of num_generations {num_generations}; {fix}"
        )
    if per_device_eval_batch_size is not None and num_generations_eval is not None:
        if per_device_eval_batch_size * num_processes % num_generations_eval:
            raise LaunchError(
                f"{where}: per_device_eval_batch_size {per_device_eval_batch_size} x {processes} is not a "
                f"multiple of num_generations_eval {num_generations_eval}; change per_device_eval_batch_size"
            )
    steps = steps_per_generation // gradient_accumulation_steps
    return BatchPlan(
        num_processes=num_processes,
        completions_per_prompt=num_generations,
        sequences_per_micro_step=micro,
        prompts_per_optimizer_step=per_step // num_generations,
        prompts_per_generation=per_step * steps // num_generations,
        optimizer_steps_per_generation=steps,
    )


def launched_processes() -> int:
    """The number of processes of this launch; `accelerate launch` and `torchrun` both export WORLD_SIZE."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def make_parser() -> TrlParser:
    return TrlParser((ScriptArguments, REALConfig, ModelConfig))


def parse_args(
    argv: list[str] | None = None, num_processes: int | None = None
) -> tuple[ScriptArguments, REALConfig, ModelConfig]:
    """Parse `--config RECIPE.yaml` plus overrides into (ScriptArguments, REALConfig, ModelConfig).

    Same semantics as `TrlParser.parse_args_and_config` (the recipe sets defaults, the command line
    overrides them, an `env:` mapping sets environment variables), but the recipe and the batch
    arithmetic are checked before the dataclasses are built, because building REALConfig already sets
    up the distributed state.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    num_processes = launched_processes() if num_processes is None else num_processes
    parser = make_parser()
    if "--config" in args:
        at = args.index("--config")
        if at + 1 >= len(args):
            raise LaunchError("--config needs a path to a recipe YAML file")
        recipe_path = args[at + 1]
        del args[at : at + 2]
        recipe = read_recipe(recipe_path)
        for key, value in recipe.pop("env", {}).items():
            os.environ[key] = str(value)
        unknown = [flag.removeprefix("--") for flag in parser.set_defaults_with_config(**recipe)[::2]]
        if unknown:
            raise LaunchError(f"unknown field(s) in {recipe_path}: {_with_suggestions(unknown, parser)}")
    namespace, remaining = parser.parse_known_args(args)
    if remaining:
        flags = [a for a in remaining if a.startswith("--")] or remaining
        raise LaunchError(f"unknown command-line argument(s): {_with_suggestions(flags, parser)}")
    check_names(namespace)
    ns = vars(namespace)
    batch_plan(
        num_processes,
        per_device_train_batch_size=ns["per_device_train_batch_size"],
        gradient_accumulation_steps=ns["gradient_accumulation_steps"],
        num_generations=ns["num_generations"],
        steps_per_generation=ns["steps_per_generation"],
        generation_batch_size=ns["generation_batch_size"],
        loss_type=ns["loss_type"],
        per_device_eval_batch_size=ns["per_device_eval_batch_size"] if _eval_enabled(ns) else None,
        num_generations_eval=(ns["num_generations_eval"] or ns["num_generations"]) if _eval_enabled(ns) else None,
    )
    try:
        script_args, training_args, model_args = parser.parse_args_into_dataclasses(args)
    except ValueError as error:  # a __post_init__ check (ours or TRL's): keep its message, drop the traceback
        raise LaunchError(str(error).replace("\n", " ")) from error
    return script_args, training_args, model_args


def read_recipe(path: str) -> dict:
    try:
        with open(path) as f:
            recipe = yaml.safe_load(f)
    except OSError as error:
        raise LaunchError(f"cannot read recipe {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise LaunchError(f"recipe {path} is not valid YAML: {str(error).splitlines()[0]}") from error
    if not isinstance(recipe, dict):
        raise LaunchError(f"recipe {path} must be a YAML mapping of field: value")
    return recipe


def _with_suggestions(names: list[str], parser: TrlParser) -> str:
    known = [action.dest for action in parser._actions]
    described = []
    for name in names:
        close = difflib.get_close_matches(name.lstrip("-"), known, n=1)
        described.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return ", ".join(described) + "; run scripts/train.py --help for the valid fields"


def _eval_enabled(ns: dict) -> bool:
    return str(ns["eval_strategy"]) not in ("no", "IntervalStrategy.NO")


def check_names(namespace) -> None:
    """Dataset and reward names must be in the registries; validation needs a validation set."""
    from real_trl import data

    known = tuple(data.TRAIN_DATASETS) + tuple(data.EVAL_BENCHMARKS) + (TOY_DATASET,)
    for option in ("dataset_name", "eval_dataset_name"):
        name, path_option = getattr(namespace, option), option.replace("_name", "_path")
        # With a local path the name only labels the data (and picks <name>.parquet inside a folder).
        if name is not None and name not in known and getattr(namespace, path_option) is None:
            raise LaunchError(f"unknown {option} {name!r}: choose one of {', '.join(known)}, or give {path_option} "
                              "to load a local file")
    unknown = [name for name in namespace.reward_funcs if name not in REWARD_FUNCS]
    if unknown:
        raise LaunchError(f"unknown reward function(s) {', '.join(unknown)}: choose from {', '.join(REWARD_FUNCS)}")
    if namespace.model_name_or_path is None:
        raise LaunchError(f"model_name_or_path is not set: name a Hub id, a local path or {TINY_MODEL}")
    if _eval_enabled(vars(namespace)) and namespace.eval_dataset_name is None:
        raise LaunchError(f"eval_strategy is {namespace.eval_strategy!r} but eval_dataset_name is not set: name a "
                          "validation set or set eval_strategy to 'no'")


# -- data and rewards --------------------------------------------------------------------------------


def toy_dataset(num_problems: int = 256, seed: int = 0):
    """Small integer arithmetic in the paper's prompt format; answers are plain integers."""
    from datasets import Dataset

    from real_trl.data import make_prompt

    operations = {"+": operator.add, "-": operator.sub, "*": operator.mul}
    rng = random.Random(seed)
    rows = {"prompt": [], "answer": []}
    for _ in range(num_problems):
        a, b, symbol = rng.randint(2, 50), rng.randint(2, 50), rng.choice("+-*")
        rows["prompt"].append(make_prompt(f"What is {a} {symbol} {b}?"))
        rows["answer"].append(str(operations[symbol](a, b)))
    return Dataset.from_dict(rows)


def load_dataset(name: str, path: str | None, split: str | None, tokenizer, max_prompt_length, limit, seed: int):
    if name == TOY_DATASET:
        dataset = toy_dataset(seed=seed)
    else:
        from real_trl.data import load_named_dataset

        try:
            dataset = load_named_dataset(
                name, path, split=split, tokenizer=tokenizer, max_prompt_length=max_prompt_length
            )
        except ValueError as error:  # missing columns, unreadable or empty files: the loader's message names the fix
            raise LaunchError(str(error).replace("\n", " ")) from error
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    return dataset


def digit_reward(completions, **kwargs) -> list[float]:
    """Smoke runs only: 1.0 when a completion contains a digit. A random tiny model writes digits in some
    completions and not in others, so groups carry signal and the REAL loss has a gradient to check."""
    from real_trl.rewards import completion_text

    return [float(any(ch.isdigit() for ch in completion_text(c))) for c in completions]


def build_reward_funcs(script_args: ScriptArguments) -> list:
    from real_trl import rewards

    funcs = {
        "math_reward": lambda: rewards.make_math_reward(require_think=script_args.require_think),
        "think_format_reward": lambda: rewards.think_format_reward,
        "digit_reward": lambda: digit_reward,
    }
    return [funcs[name]() for name in script_args.reward_funcs]


# -- model -------------------------------------------------------------------------------------------


def load_tokenizer(model_args: ModelConfig, training_args: REALConfig):
    if model_args.model_name_or_path == TINY_MODEL:
        from real_trl.tiny import build_tiny_tokenizer

        tokenizer = build_tiny_tokenizer()
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(
            model_args.model_name_or_path,
            revision=model_args.model_revision,
            trust_remote_code=training_args.trust_remote_code,
        )
    tokenizer.padding_side = "left"  # generation appends to the right of left-padded prompts
    return tokenizer


def load_model(model_args: ModelConfig, training_args: REALConfig, tokenizer):
    """The model argument for REALTrainer: a built tiny model, or a name/path that TRL loads with our kwargs."""
    if model_args.model_name_or_path == TINY_MODEL:
        from real_trl.tiny import build_tiny_model

        return build_tiny_model(tokenizer, seed=training_args.seed)
    init_kwargs = dict(
        revision=model_args.model_revision,
        dtype=model_args.dtype,
        attn_implementation=model_args.attn_implementation,
        trust_remote_code=training_args.trust_remote_code,
    )
    init_kwargs.update(training_args.model_init_kwargs or {})
    training_args.model_init_kwargs = init_kwargs
    return model_args.model_name_or_path


def last_checkpoint(output_dir: str) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None


# -- main --------------------------------------------------------------------------------------------


def train(script_args: ScriptArguments, training_args: REALConfig, model_args: ModelConfig):
    from trl import get_peft_config, get_quantization_config

    from real_trl.trainer import REALTrainer

    plan = batch_plan(
        training_args.world_size,
        training_args.per_device_train_batch_size,
        training_args.gradient_accumulation_steps,
        training_args.num_generations,
        steps_per_generation=training_args.steps_per_generation,
        loss_type=training_args.loss_type,
    )
    is_main = training_args.process_index == 0

    tokenizer = load_tokenizer(model_args, training_args)
    # The main process downloads and caches first; the others then read its cache.
    with training_args.main_process_first(desc="loading datasets"):
        train_dataset = load_dataset(
            script_args.dataset_name, script_args.dataset_path, script_args.dataset_split, tokenizer,
            script_args.max_prompt_length, script_args.max_train_samples, seed=training_args.seed,
        )
        eval_dataset = None
        if training_args.eval_strategy != "no":
            eval_dataset = load_dataset(
                script_args.eval_dataset_name, script_args.eval_dataset_path, script_args.eval_dataset_split,
                tokenizer, script_args.max_prompt_length, script_args.max_eval_samples, seed=training_args.seed + 1,
            )

    checkpoint = training_args.resume_from_checkpoint
    if checkpoint is None and script_args.resume:
        checkpoint = last_checkpoint(training_args.output_dir)
        if is_main:
            found = f"resuming from {checkpoint}" if checkpoint else "no checkpoint yet, starting from scratch"
            print(f"[real_trl] --resume: {found} ({training_args.output_dir})", flush=True)

    trainer = REALTrainer(
        model=load_model(model_args, training_args, tokenizer),
        reward_funcs=build_reward_funcs(script_args),
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        quantization_config=get_quantization_config(model_args),
    )
    if is_main:
        backend = trainer.accelerator.distributed_type
        print(f"[real_trl] {getattr(backend, 'value', backend)} {plan.describe()}", flush=True)
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(training_args.output_dir)
    if is_main:
        print(f"[real_trl] saved the model to {training_args.output_dir}", flush=True)
    return trainer


def main(argv: list[str] | None = None) -> None:
    try:
        train(*parse_args(argv))
    except LaunchError as error:
        # Every process finds the same mistake; one of them says it.
        if os.environ.get("RANK", "0") == "0":
            print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
