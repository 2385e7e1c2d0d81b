"""The run plan: how a recipe's numbers play out on a launch, computed once before anything is loaded.

`settings` are the parsed field values by name (the launcher's ScriptArguments, REALConfig and
trl.ModelConfig fields together, as the recipe and the command line give them); a missing field takes
its TRL default (`DEFAULTS`). With the engine the launch runs on (`engine.Engine`) they give

- the batch arithmetic (`batch_plan`): sequences per micro-step, prompts per optimizer step and per
  generation batch, optimizer steps per generation batch;
- every problem with it and with the step schedule, all at once, each naming the fix (`plan_problems`):
  checkpoints, validations and the end of training must fall on generation-batch boundaries;
- the whole plan (`RunPlan`): length in optimizer steps, generation batches and epochs, checkpoint and
  validation frequency, how each generation batch is cut into micro-steps, the log-prob path (TRL's fused
  LM head and its token tile, `logprob_path`), precision (`engine.decide_precision`) and the dtypes
  gradients are reduced and accumulated in (`engine.gradient_precision`). The launcher prints it, and
  `scripts/train.py --dry_run` prints it and exits.

No model and no dataset is loaded: a recipe is checked on any machine before anything heavy happens; only
`known_dataset_size` reads the data registry. The whole-group rule and the REAL loss types are the core's
(`real_trl.layout`, `real_trl.losses`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from real_trl.launch.engine import Engine, GradientPrecision, Precision, decide_precision, gradient_precision
from real_trl.layout import whole_group_problem
from real_trl.losses import REAL_LOSS_TYPES

# TRL 1.16's defaults (GRPOConfig, REALConfig, trl.ModelConfig) for the fields the plan reads.
# fmt: off
DEFAULTS = dict(  # noqa: C408 (keyword form: the field names read as in a recipe)
    per_device_train_batch_size=8, gradient_accumulation_steps=1, num_generations=8, steps_per_generation=None,
    generation_batch_size=None, loss_type="real", per_device_eval_batch_size=8, num_generations_eval=None,
    eval_strategy="no", eval_steps=None, save_strategy="steps", save_steps=500, logging_steps=10, max_steps=-1,
    num_train_epochs=3.0, learning_rate=1e-6, bf16=None, fp16=False, dtype="float32", dataset_name="deepscaler",
    dataset_path=None, max_train_samples=None, whole_groups_per_step=False, logprob_chunk_size=None, use_cpu=False,
)
# fmt: on

BATCH_FIX = "rescale per_device_train_batch_size / gradient_accumulation_steps / steps_per_generation (docs/recipes.md)"


class PlanError(ValueError):
    """The problems that stop a plan, one line each; `problems` keeps them as a list."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def _get(settings: Mapping, name: str):
    return settings.get(name, DEFAULTS[name])


def plans_whole_groups(settings: Mapping) -> bool:
    """Whether each generation batch is planned at group level: always for the REAL losses, and for TRL's
    loss types with `whole_groups_per_step`."""
    return _get(settings, "loss_type") in REAL_LOSS_TYPES or bool(_get(settings, "whole_groups_per_step"))


def strategy(settings: Mapping, name: str) -> str:
    """A save/eval strategy as its plain string ("steps", "no", ...), whether given as a string or TRL's enum."""
    value = _get(settings, name)
    return str(getattr(value, "value", value)).lower()


def _count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 process', '8 processes', '5,600 optimizer steps': a number and its noun, singular or plural."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def _processes(n: int) -> str:
    return _count(n, "process", "processes")


# -- batch arithmetic ------------------------------------------------------------------------------------


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
        """One line: processes, micro-step, generation batch, optimizer step."""
        per_process = self.sequences_per_micro_step // self.num_processes
        return (
            f"{_processes(self.num_processes)} x {_count(per_process, 'sequence')} per micro-step; "
            f"{_count(self.prompts_per_generation, 'prompt')} x "
            f"{_count(self.completions_per_prompt, 'completion')} per generation batch; "
            f"{_count(self.prompts_per_optimizer_step, 'prompt')} per optimizer step; "
            f"{_count(self.optimizer_steps_per_generation, 'optimizer step')} per generation batch"
        )


def _micro_steps_per_generation(settings: Mapping, num_processes: int) -> tuple[int | None, list[str]]:
    """steps_per_generation as TRL derives it (from generation_batch_size, else gradient_accumulation_steps)."""
    steps, generation_batch = _get(settings, "steps_per_generation"), _get(settings, "generation_batch_size")
    micro = _get(settings, "per_device_train_batch_size") * num_processes
    if steps is not None and generation_batch is not None:
        return None, ["set steps_per_generation or generation_batch_size, not both"]
    if steps is not None:
        return steps, []
    if generation_batch is None:
        return _get(settings, "gradient_accumulation_steps"), []  # GRPOConfig's default
    if generation_batch % micro:
        problem = (
            f"generation_batch_size {generation_batch} is not a multiple of per_device_train_batch_size "
            f"{_get(settings, 'per_device_train_batch_size')} x {_processes(num_processes)} = {micro}; {BATCH_FIX}"
        )
        return None, [problem]
    return generation_batch // micro, []


def _derive_batch(settings: Mapping, num_processes: int) -> tuple[BatchPlan | None, list[str]]:
    """The batch plan and every problem with it (the plan is None when there is any)."""
    per_device = _get(settings, "per_device_train_batch_size")
    accumulation, group = _get(settings, "gradient_accumulation_steps"), _get(settings, "num_generations")
    micro = per_device * num_processes
    steps, problems = _micro_steps_per_generation(settings, num_processes)
    where = f"batch arithmetic does not divide for {_processes(num_processes)}"
    if plans_whole_groups(settings):
        problems.append(whole_group_problem(per_device, num_processes, group))
    if steps is not None and steps % accumulation:
        problems.append(
            f"{where}: steps_per_generation {steps} is not a multiple of gradient_accumulation_steps {accumulation} "
            f"(a generation batch must be a whole number of optimizer steps); {BATCH_FIX}"
        )
    if micro * accumulation % group:
        problems.append(
            f"{where}: {micro * accumulation} sequences per optimizer step (per_device_train_batch_size x processes x "
            f"gradient_accumulation_steps) is not a multiple of num_generations {group}; {BATCH_FIX}"
        )
    eval_group = _get(settings, "num_generations_eval") or group
    eval_batch = _get(settings, "per_device_eval_batch_size") * num_processes
    if strategy(settings, "eval_strategy") != "no" and eval_batch % eval_group:
        problems.append(
            f"{where}: per_device_eval_batch_size {_get(settings, 'per_device_eval_batch_size')} x "
            f"{_processes(num_processes)} = {eval_batch} is not a multiple of num_generations_eval {eval_group}; "
            "change per_device_eval_batch_size"
        )
    problems = [p for p in problems if p]
    if problems:
        return None, problems
    per_step = micro * accumulation
    plan = BatchPlan(
        num_processes=num_processes,
        completions_per_prompt=group,
        sequences_per_micro_step=micro,
        prompts_per_optimizer_step=per_step // group,
        prompts_per_generation=per_step * (steps // accumulation) // group,
        optimizer_steps_per_generation=steps // accumulation,
    )
    return plan, []


def batch_plan(settings: Mapping, num_processes: int) -> BatchPlan:
    """The batch plan of `settings` on `num_processes` processes; raises PlanError listing every problem."""
    plan, problems = _derive_batch(settings, num_processes)
    if problems:
        raise PlanError(problems)
    return plan


# -- training length, checkpoints and validation -----------------------------------------------------


def _interval(settings: Mapping, name: str) -> int | None:
    """save_steps / eval_steps in optimizer steps (a value below 1 is a fraction of max_steps, as in transformers)."""
    if strategy(settings, name.replace("_steps", "_strategy")) != "steps":
        return None
    value = _get(settings, name)
    if value is None:  # eval_steps defaults to logging_steps
        value = _get(settings, "logging_steps")
    if value < 1:
        return math.ceil(value * _get(settings, "max_steps")) if _get(settings, "max_steps") > 0 else None
    return int(value)


def schedule_problems(settings: Mapping, optimizer_steps_per_generation: int) -> list[str]:
    """Training length, checkpoints and validations that would fall inside a generation batch."""
    per_generation = optimizer_steps_per_generation
    problems = []
    checks = {
        "max_steps": _get(settings, "max_steps") if _get(settings, "max_steps") > 0 else None,
        "save_steps": _interval(settings, "save_steps"),
        "eval_steps": _interval(settings, "eval_steps"),
    }
    for name, steps in checks.items():
        if steps is not None and steps % per_generation:
            fixed = max(per_generation, round(steps / per_generation) * per_generation)
            problems.append(
                f"{name} {steps} is not a multiple of the {per_generation} optimizer steps per generation batch, so "
                f"it would fall inside a generation batch; set {name} to a multiple of {per_generation} (e.g. {fixed})"
            )
    return problems


def plan_problems(settings: Mapping, num_processes: int) -> list[str]:
    """Every problem with the batch arithmetic and the step schedule of `settings` on `num_processes`."""
    plan, problems = _derive_batch(settings, num_processes)
    if plan is not None:
        problems = schedule_problems(settings, plan.optimizer_steps_per_generation)
    return problems


# -- the log-prob path -----------------------------------------------------------------------------


def logprob_path(settings: Mapping) -> str:
    """How the run computes log-probs: TRL's fused LM head, tiles of how many tokens, and what folds them (TRL's
    Triton kernel on a GPU, its torch fallback on CPU, as `use_cpu` says)."""
    from real_trl.config import TRL_LOGPROB_TILE, logprob_tile  # loads TRL: only when a plan is made

    on_gpu = not _get(settings, "use_cpu")
    kernel = "Triton kernel on GPU" if on_gpu else "torch fallback on CPU"
    setting = _get(settings, "logprob_chunk_size")
    if _get(settings, "loss_type") in REAL_LOSS_TYPES:
        tile = logprob_tile(setting, triton_kernel=on_gpu)
        source = f"logprob_chunk_size {'automatic' if setting is None else setting}"
    else:
        tile, source = TRL_LOGPROB_TILE, "GRPOTrainer's, for TRL's loss types"
    return f"TRL's fused LM head (no full logits), tiles of {tile:,} tokens ({kernel}; {source})"


# -- the whole plan --------------------------------------------------------------------------------


def known_dataset_size(settings: Mapping) -> int | None:
    """Rows of a registry training set (before the prompt-length filter), capped by max_train_samples."""
    if _get(settings, "dataset_path") is not None:
        return None  # a local file: its size is known once it is read
    from real_trl.data import REGISTRY  # data imports `datasets`: only when the size is asked for

    spec = REGISTRY.get(_get(settings, "dataset_name"))
    limit = _get(settings, "max_train_samples")
    return min(spec.rows, limit or spec.rows) if spec else None


@dataclass(frozen=True)
class RunPlan:
    """How a run's numbers play out on its engine, computed once from the settings as written."""

    engine: Engine
    batch: BatchPlan
    precision: Precision
    gradients: GradientPrecision
    whole_groups: bool  # the generation batch is planned at group level (REAL's planner)
    optimizer_steps: int | None  # None when epochs of a dataset of unknown size set the length
    num_train_epochs: float | None  # set when max_steps is not
    dataset_name: str
    dataset_size: int | None
    save_steps: int | None  # optimizer steps between checkpoints; None unless save_strategy is "steps"
    eval_steps: int | None
    save_strategy: str
    eval_strategy: str
    logprobs: str  # `logprob_path`

    @classmethod
    def from_settings(cls, settings: Mapping, engine: Engine, dataset_size: int | None = None) -> RunPlan:
        """The plan of `settings` on `engine`; raises PlanError listing every problem.

        `dataset_size` defaults to the registry's size of the training set (unknown for a local file).
        """
        problems = plan_problems(settings, engine.num_processes)
        if problems:
            raise PlanError(problems)
        batch = batch_plan(settings, engine.num_processes)
        size = known_dataset_size(settings) if dataset_size is None else dataset_size
        max_steps, epochs = _get(settings, "max_steps"), None
        if max_steps <= 0:
            epochs = float(_get(settings, "num_train_epochs"))
            max_steps = math.ceil(epochs * size / batch.prompts_per_optimizer_step) if size else None
        precision = decide_precision(engine, _get(settings, "dtype"), _get(settings, "bf16"), _get(settings, "fp16"))
        return cls(
            engine, batch, precision, gradient_precision(engine, precision), plans_whole_groups(settings),
            max_steps, epochs, _get(settings, "dataset_name"), size,
            _interval(settings, "save_steps"), _interval(settings, "eval_steps"),
            strategy(settings, "save_strategy"), strategy(settings, "eval_strategy"), logprob_path(settings),
        )  # fmt: skip

    def _in_both_units(self, steps: int) -> str:
        batches = steps // self.batch.optimizer_steps_per_generation
        return f"{_count(steps, 'optimizer step')} = {_count(batches, 'generation batch', 'generation batches')}"

    def _length(self) -> str:
        if self.optimizer_steps is None:
            return f"{self.num_train_epochs:g} epochs of {self.dataset_name} (size unknown until it is read)"
        steps = self._in_both_units(self.optimizer_steps)
        if not self.dataset_size:
            return steps
        problems = f"{_count(self.dataset_size, 'problem')} ({self.dataset_name})"
        if self.num_train_epochs is not None:
            return f"{self.num_train_epochs:g} epochs of {problems} = about {steps}"
        epochs = self.optimizer_steps * self.batch.prompts_per_optimizer_step / self.dataset_size
        return f"{steps} = {epochs:.1f} epochs of {problems}"

    def _every(self, steps: int | None, strategy: str) -> str:
        if steps is not None:
            return "every " + self._in_both_units(steps)
        return "none" if strategy == "no" else f"every {strategy}"

    def _layout(self) -> str:
        if self.whole_groups:
            return (
                "whole groups in every micro-step, so every optimizer step holds whole groups (group-level plan, "
                "real_trl.layout)"
            )
        return "TRL's per-row shuffle: a group's completions spread over the optimizer steps of its generation batch"

    def describe(self) -> str:
        """The plan, one aspect a line: engine, batch, layout, log-probs, length, checkpoints, validation,
        precision, gradients."""
        lines = [
            f"engine: {self.engine.describe()}",
            f"batch: {self.batch.describe()}",
            f"layout: {self._layout()}",
            f"log-probs: {self.logprobs}",
            f"length: {self._length()}",
            f"checkpoints: {self._every(self.save_steps, self.save_strategy)}",
            f"validation: {self._every(self.eval_steps, self.eval_strategy)}",
            f"precision: {self.precision.describe()}",
            f"gradients: {self.gradients.describe()}",
        ]
        if self.precision.note:
            lines.append(f"precision changed: {self.precision.note}")
        return "\n".join(lines)
