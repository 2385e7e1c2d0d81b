"""The engine a launch trains on (one process, DDP, DeepSpeed, FSDP) and the precision it trains in.

Pure (no torch): `real_trl.plan` uses it to print a run's plan and `scripts/train.py --dry_run` to show
it before anything is loaded. The one rule: never step 16-bit weights with an optimizer that keeps no
float32 copy. AdamW's updates (about lr per step, 2e-6 in the paper) fall below bfloat16's resolution
near 1 (2^-8) and are mostly rounded away, silently.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import yaml

_ENGINE_NAMES = {"single": "one process", "ddp": "DDP", "deepspeed": "DeepSpeed", "fsdp": "FSDP"}
_COMPUTE_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp8": "float8"}


@dataclass(frozen=True)
class Engine:
    """What the trainer runs on, as far as the batch and the precision care."""

    kind: str = "single"  # "single", "ddp", "deepspeed" or "fsdp"
    num_processes: int = 1
    mixed_precision: str = "no"  # accelerate's setting: "no", "bf16", "fp16" or "fp8"
    zero_stage: int | None = None  # DeepSpeed only; None when it lives in a DeepSpeed JSON file
    fsdp_version: int | None = None  # FSDP only
    source: str = "environment"  # where it was read: "environment" or an accelerate config path

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
        return f"{where}, mixed precision {self.mixed_precision} ({self.source})"


def _is_true(value: str | None) -> bool:
    return str(value).lower() in ("1", "true", "yes")


def engine_from_environment(environ: Mapping[str, str] | None = None) -> Engine:
    """The engine of this launch, from what `accelerate launch` exports (torchrun exports WORLD_SIZE only)."""
    env = os.environ if environ is None else environ
    processes = int(env.get("WORLD_SIZE", "1"))
    mixed = env.get("ACCELERATE_MIXED_PRECISION", "no").lower()
    if _is_true(env.get("ACCELERATE_USE_DEEPSPEED")):
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
        stage = (config.get("deepspeed_config") or {}).get("zero_stage")
        return Engine("deepspeed", processes, mixed, zero_stage=stage, source=path)
    if distributed == "FSDP":
        version = int((config.get("fsdp_config") or {}).get("fsdp_version", 1))
        return Engine("fsdp", processes, mixed, fsdp_version=version, source=path)
    if distributed == "NO" or distributed.startswith("MULTI_"):
        return Engine("ddp" if processes > 1 else "single", processes, mixed, source=path)
    raise ValueError(
        f"accelerate config {path}: distributed_type {distributed} is not supported; use DDP, DeepSpeed, FSDP or "
        "one process (see accelerate_configs/)"
    )


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
    mixed = "fp16" if fp16 else "bf16" if bf16 else engine.mixed_precision  # TrainingArguments' flags win
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
    return Precision(dtype, bf16, fp16, dtype != "float32", compute, note)
