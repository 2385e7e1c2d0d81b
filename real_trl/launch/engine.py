"""The engine a launch trains on (one process, DDP, DeepSpeed, FSDP) and the precision it trains in.

Pure (no torch): `real_trl.plan` uses it to print a run's plan and `scripts/train.py --dry_run` to show
it before anything is loaded. Two rules:

- never step 16-bit weights with an optimizer that keeps no float32 copy. AdamW's updates (about lr per
  step, 2e-6 in the paper) fall below bfloat16's resolution near 1 (2^-8) and are mostly rounded away,
  silently (`decide_precision`);
- say in which dtype gradients are reduced across processes and accumulated over micro-steps
  (`gradient_precision`). The official runs do both in float32; DeepSpeed under bf16 defaults to bf16
  for both, which the shipped DeepSpeed config files (accelerate_configs/deepspeed_zero*.json) change.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

_ENGINE_NAMES = {"single": "one process", "ddp": "DDP", "deepspeed": "DeepSpeed", "fsdp": "FSDP"}
_COMPUTE_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp8": "float8"}
# DeepSpeed's names for dtypes in its config (runtime/config.py: communication_data_type, DtypeEnum).
_DEEPSPEED_DTYPES = {
    "fp32": "float32", "float32": "float32", "float": "float32",
    "fp16": "float16", "float16": "float16", "half": "float16",
    "bf16": "bfloat16", "bfloat16": "bfloat16", "bfloat": "bfloat16",
}  # fmt: skip


@dataclass(frozen=True)
class Engine:
    """What the trainer runs on, as far as the batch and the precision care."""

    kind: str = "single"  # "single", "ddp", "deepspeed" or "fsdp"
    num_processes: int = 1
    # accelerate's setting: "no", "bf16", "fp16" or "fp8"; "auto" when a DeepSpeed config file leaves it to
    # TrainingArguments' bf16 / fp16
    mixed_precision: str = "no"
    zero_stage: int | None = None  # DeepSpeed only
    fsdp_version: int | None = None  # FSDP only
    source: str = "environment"  # where it was read: "environment" or an accelerate config path
    deepspeed_config_file: str | None = None  # DeepSpeed only: the JSON file the accelerate config names
    communication_dtype: str | None = None  # DeepSpeed's communication_data_type; None: its default
    grad_accum_dtype: str | None = None  # DeepSpeed's data_types.grad_accum_dtype; None: its default

    @property
    def name(self) -> str:
        """E.g. 'DeepSpeed ZeRO-2', 'FSDP2', 'DDP', 'one process'."""
        name = _ENGINE_NAMES[self.kind]
        if self.kind == "deepspeed" and self.zero_stage is not None:
            name += f" ZeRO-{self.zero_stage}"
        return name + str(self.fsdp_version or 1) if self.kind == "fsdp" else name

    def describe(self) -> str:
        """E.g. 'DeepSpeed ZeRO-2, 8 processes, mixed precision bf16 (accelerate_configs/zero2.yaml)'."""
        processes = f"{self.num_processes} process{'es' if self.num_processes != 1 else ''}"
        where = processes if self.kind == "single" else f"{self.name}, {processes}"
        mixed = "from bf16 / fp16" if self.mixed_precision == "auto" else self.mixed_precision
        sources = ", ".join(s for s in (self.source, self.deepspeed_config_file) if s)
        return f"{where}, mixed precision {mixed} ({sources})"


def _is_true(value: str | None) -> bool:
    return str(value).lower() in ("1", "true", "yes")


def engine_from_environment(environ: Mapping[str, str] | None = None) -> Engine:
    """The engine of this launch, from what `accelerate launch` exports (torchrun exports WORLD_SIZE only).

    With a DeepSpeed config file accelerate exports its path (ACCELERATE_DEEPSPEED_CONFIG_FILE, relative to
    the directory of the launch) and neither the ZeRO stage nor the mixed precision ("no"): those are read
    from the file. Raises ValueError (one line) for a file that cannot be read."""
    env = os.environ if environ is None else environ
    processes = int(env.get("WORLD_SIZE", "1"))
    mixed = env.get("ACCELERATE_MIXED_PRECISION", "no").lower()
    if _is_true(env.get("ACCELERATE_USE_DEEPSPEED")):
        config_file = env.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
        if config_file:
            return Engine(
                "deepspeed", processes, **read_deepspeed_config(config_file, "ACCELERATE_DEEPSPEED_CONFIG_FILE")
            )
        stage = env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE")
        return Engine("deepspeed", processes, mixed, zero_stage=int(stage) if stage else None)
    if _is_true(env.get("ACCELERATE_USE_FSDP")):
        return Engine("fsdp", processes, mixed, fsdp_version=int(env.get("FSDP_VERSION", "1")))
    return Engine("ddp" if processes > 1 else "single", processes, mixed)


def engine_from_accelerate_config(path: str) -> Engine:
    """The engine an accelerate config YAML launches; raises ValueError (one line) for an unusable file."""
    try:
        with open(path) as f:
            config = yaml.safe_load(f) or {}
    except OSError as error:
        raise ValueError(f"cannot read accelerate config {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise ValueError(f"accelerate config {path} is not valid YAML: {str(error).splitlines()[0]}") from error
    if not isinstance(config, dict):  # a user's file, not a caller's bug: ValueError like the others
        raise ValueError(f"accelerate config {path} must be a YAML mapping, like the files in accelerate_configs/")
    distributed = str(config.get("distributed_type", "NO")).upper()
    processes, mixed = int(config.get("num_processes", 1)), str(config.get("mixed_precision", "no")).lower()
    if distributed == "DEEPSPEED":
        deepspeed = config.get("deepspeed_config") or {}
        if deepspeed.get("deepspeed_config_file"):
            file = _find_deepspeed_config(deepspeed["deepspeed_config_file"], path)
            return Engine("deepspeed", processes, source=path, **read_deepspeed_config(file, path))
        return Engine("deepspeed", processes, mixed, zero_stage=deepspeed.get("zero_stage"), source=path)
    if distributed == "FSDP":
        version = int((config.get("fsdp_config") or {}).get("fsdp_version", 1))
        return Engine("fsdp", processes, mixed, fsdp_version=version, source=path)
    if distributed == "NO" or distributed.startswith("MULTI_"):
        return Engine("ddp" if processes > 1 else "single", processes, mixed, source=path)
    raise ValueError(
        f"accelerate config {path}: distributed_type {distributed} is not supported; use DDP, DeepSpeed, FSDP or "
        "one process (see accelerate_configs/)"
    )


def _find_deepspeed_config(name: str, accelerate_config: str) -> str:
    """The DeepSpeed config file an accelerate config names: relative to the current directory, as accelerate
    reads it, or else to the repository holding the accelerate config (its folder's parent), so that a dry run
    from elsewhere finds the shipped files."""
    beside = Path(accelerate_config).resolve().parent.parent / name
    return name if Path(name).is_file() or not beside.is_file() else str(beside)


def read_deepspeed_config(path: str, named_by: str) -> dict:
    """The Engine fields a DeepSpeed JSON config sets: ZeRO stage, mixed precision ("auto" when its bf16 /
    fp16 sections are "auto" or absent: TrainingArguments' bf16 / fp16 decide, as the Trainer fills them),
    communication and gradient-accumulation dtypes, and the file itself. Raises ValueError (one line)."""
    try:
        with open(path) as f:
            config = json.load(f)
    except OSError as error:
        raise ValueError(
            f"{named_by} names DeepSpeed config {path}, which cannot be read ({error.strerror}); accelerate reads "
            "that path relative to the directory you launch from (run from the repository root)"
        ) from error
    except json.JSONDecodeError as error:
        raise ValueError(f"DeepSpeed config {path} is not valid JSON: {error}") from error
    if not isinstance(config, dict):
        raise ValueError(f"DeepSpeed config {path} must be a JSON object, like accelerate_configs/deepspeed_zero2.json")
    enabled = {kind: (config.get(kind) or {}).get("enabled", "auto") for kind in ("bf16", "fp16")}
    mixed = next((kind for kind, value in enabled.items() if value is True), None)
    if mixed is None:
        mixed = "auto" if "auto" in enabled.values() else "no"
    stage = (config.get("zero_optimization") or {}).get("stage", 0)
    return {
        "mixed_precision": mixed,
        "zero_stage": stage if isinstance(stage, int) else None,
        "deepspeed_config_file": path,
        "communication_dtype": _deepspeed_dtype(config.get("communication_data_type"), path),
        "grad_accum_dtype": _deepspeed_dtype((config.get("data_types") or {}).get("grad_accum_dtype"), path),
    }


def _deepspeed_dtype(name, path: str) -> str | None:
    if name is None:
        return None
    if str(name).lower() not in _DEEPSPEED_DTYPES:
        raise ValueError(f"DeepSpeed config {path}: unknown dtype {name!r}; use fp32, bf16 or fp16")
    return _DEEPSPEED_DTYPES[str(name).lower()]


@dataclass(frozen=True)
class Precision:
    """How the weights are loaded and computed with, and what was changed to get there.

    The optimizer always steps float32 weights with float32 state: the loaded weights themselves, or the
    engine's float32 master copy of 16-bit ones (`master_copy`). The launcher applies `overrides()` to the
    settings before it builds REALConfig and loads the model.
    """

    dtype: str  # trl.ModelConfig.dtype: what the weights are loaded as
    bf16: bool  # TrainingArguments.bf16 and fp16: the mixed precision the engine runs
    fp16: bool
    master_copy: bool
    compute_dtype: str
    note: str = ""  # what was changed and why; empty when the settings stand as written
    mixed_precision: str = "no"  # the mixed precision the engine runs: "no", "bf16", "fp16" or "fp8"

    def overrides(self) -> dict:
        """The decided values of the settings `dtype`, `bf16` and `fp16`."""
        return {"dtype": self.dtype, "bf16": self.bf16, "fp16": self.fp16}

    def describe(self) -> str:
        """One line: the dtype of the weights, of the optimizer state and of compute."""
        copy = ", stepped as a float32 master copy" if self.master_copy else ""
        return f"weights loaded as {self.dtype}{copy}; optimizer state float32; compute {self.compute_dtype}"


def keeps_float32_master(engine: Engine, mixed_precision: str) -> bool:
    """Whether the engine steps a float32 copy of 16-bit weights, so loading them in 16 bits is safe."""
    if engine.kind == "deepspeed":  # ZeRO 1-3 always keep float32 partitions; ZeRO-0 only under bf16/fp16
        return (engine.zero_stage or 0) >= 1 or mixed_precision != "no"
    if engine.kind == "fsdp":  # accelerate upcasts trainable parameters to float32 under mixed precision
        return mixed_precision != "no"
    return False  # DDP and a single process step the parameters themselves


def decide_precision(engine: Engine, dtype: str | None, bf16: bool | None = None, fp16: bool = False) -> Precision:
    """The precision to train in, from trl.ModelConfig's `dtype` and TrainingArguments' `bf16` / `fp16`.

    Where the engine would step 16-bit weights with no float32 copy (DDP or one process with 16-bit
    weights; FSDP or DeepSpeed ZeRO-0 without mixed precision), mixed precision is turned on in the
    weights' 16-bit type if it was off, and where the engine still keeps no float32 copy, the weights are
    loaded in float32 and compute runs in 16 bits under autocast. dtype "auto" (and None, which
    transformers reads as "auto") counts as 16-bit: the paper's checkpoints are stored in bfloat16.
    `bf16=None` is GRPOConfig's default: on unless fp16 is.
    """
    requested = dtype = dtype or "auto"
    bf16 = not fp16 if bf16 is None else bf16
    accelerate_mixed = "no" if engine.mixed_precision == "auto" else engine.mixed_precision
    mixed = "fp16" if fp16 else "bf16" if bf16 else accelerate_mixed  # TrainingArguments' flags win
    changes = []
    if dtype != "float32" and not keeps_float32_master(engine, mixed):
        if mixed == "no":
            mixed = "fp16" if dtype == "float16" else "bf16"
            bf16, fp16 = mixed == "bf16", mixed == "fp16"
            changes.append(f"{mixed} on")
        if not keeps_float32_master(engine, mixed):
            changes.append(f"dtype {dtype} -> float32")
            dtype = "float32"
    compute = _COMPUTE_DTYPES.get(mixed, dtype)
    note = ""
    if changes:
        note = (
            f"{', '.join(changes)}: {engine.name} would step {requested} weights with no float32 copy, where "
            f"AdamW's small updates round away; the optimizer now steps float32 weights, compute stays {compute}"
        )
    return Precision(dtype, bf16, fp16, dtype != "float32", compute, note, mixed)


@dataclass(frozen=True)
class GradientPrecision:
    """The dtype gradients are reduced across processes in and the dtype they are accumulated in over the
    micro-steps of an optimizer step. The official runs do both in float32 (FSDP with reduce_dtype float32,
    a reduce-scatter after every micro-step into float32 shards)."""

    reduce_dtype: str | None  # None: one process, nothing to reduce
    accumulate_dtype: str
    how: str  # what sets them
    limitation: str = ""  # where the engine cannot do float32, or how to get it
    problem: str = ""  # a setting the engine refuses at start-up; the launcher reports it

    @property
    def float32(self) -> bool:
        return self.reduce_dtype in (None, "float32") and self.accumulate_dtype == "float32"

    def describe(self) -> str:
        """One line, e.g. 'reduced in float32, accumulated in float32 (DeepSpeed's communication_data_type ...)'."""
        reduce = "not reduced (one process)" if self.reduce_dtype is None else f"reduced in {self.reduce_dtype}"
        line = f"{reduce}, accumulated in {self.accumulate_dtype} ({self.how})"
        return f"{line}; {self.limitation}" if self.limitation else line


FSDP2_FLOAT32_GRADIENTS = "real_trl.launch.fsdp.reduce_fsdp2_gradients_in_float32"


def gradient_precision(engine: Engine, precision: Precision) -> GradientPrecision:
    """Where `engine`, running `precision` (from `decide_precision`), reduces and accumulates gradients.

    Measured on CPU for the shipped configs (tests/test_gradient_precision.py); the rules are the engines':
    DeepSpeed communicates in `communication_data_type`, else in the 16-bit type of enabled mixed precision,
    and accumulates in `data_types.grad_accum_dtype`, else in that type too (deepspeed/runtime/engine.py:
    `communication_data_type`, `get_data_types`); without ZeRO it refuses to accumulate 16-bit weights'
    gradients in float32. FSDP2 reduces in its MixedPrecisionPolicy's `reduce_dtype`, which accelerate sets
    to the 16-bit type and the launcher raises to float32 (`real_trl.launch.fsdp`). DDP and one process
    hold float32 weights here (`decide_precision`), whose own gradients are float32.
    """
    mixed = precision.mixed_precision
    sixteen = _COMPUTE_DTYPES.get(mixed) if mixed in ("bf16", "fp16") else None
    if engine.kind == "single":
        return GradientPrecision(None, precision.dtype, f"the {precision.dtype} weights' own gradients")
    if engine.kind == "ddp":
        how = f"DDP reduces the {precision.dtype} weights' own gradients once per optimizer step"
        return GradientPrecision(precision.dtype, precision.dtype, how)
    if engine.kind == "fsdp":
        return _fsdp_gradients(engine, precision, sixteen)
    return _deepspeed_gradients(engine, sixteen)


def _deepspeed_gradients(engine: Engine, sixteen: str | None) -> GradientPrecision:
    model_dtype = sixteen or "float32"  # DeepSpeed's get_data_types: the enabled 16-bit type, else float32
    reduce = engine.communication_dtype or model_dtype
    accumulate = engine.grad_accum_dtype or model_dtype
    where = engine.deepspeed_config_file or "not set: DeepSpeed's defaults follow the 16-bit weights"
    how = f"DeepSpeed's communication_data_type and data_types.grad_accum_dtype, {where}"
    limitation = problem = ""
    if (engine.zero_stage or 0) == 0 and sixteen:
        limitation = (
            f"DeepSpeed without ZeRO cannot accumulate {sixteen} weights' gradients in float32 (grad_accum_dtype "
            "fp32 raises NotImplementedError): use ZeRO-1 or above for float32 accumulation"
        )
        if accumulate != model_dtype:
            problem = (
                f"DeepSpeed without ZeRO refuses data_types.grad_accum_dtype {accumulate} with {sixteen} weights "
                f"(NotImplementedError at start-up): remove grad_accum_dtype from {engine.deepspeed_config_file} "
                "or use ZeRO stage 1 or above"
            )
    elif reduce != "float32" or accumulate != "float32":
        limitation = (
            "for float32 set communication_data_type fp32 and data_types.grad_accum_dtype fp32 in a DeepSpeed "
            "config file, as accelerate_configs/deepspeed_zero2.json does"
        )
    return GradientPrecision(reduce, accumulate, how, limitation, problem)


def _fsdp_gradients(engine: Engine, precision: Precision, sixteen: str | None) -> GradientPrecision:
    if sixteen is None:  # no mixed precision: the (float32) parameters' own gradients
        dtype = precision.dtype if precision.dtype in ("float32", "float16", "bfloat16") else "float32"
        return GradientPrecision(dtype, dtype, "no mixed-precision policy: the parameters' own dtype")
    if (engine.fsdp_version or 1) == 2 and sixteen == "bfloat16":
        how = (
            "FSDP2 MixedPrecisionPolicy reduce_dtype float32, reduce-scattered after every micro-step into float32 "
            f"shards (sync_each_batch), set by the launcher: {FSDP2_FLOAT32_GRADIENTS}"
        )
        return GradientPrecision("float32", "float32", how)
    policy = f"accelerate's FSDP{engine.fsdp_version or 1} mixed-precision policy ({sixteen} everywhere)"
    limitation = "the launcher raises them to float32 on FSDP2 with bf16 only"
    return GradientPrecision(sixteen, sixteen, policy, limitation)
