"""REALConfig: GRPOConfig plus the REAL objective's settings."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, fields

import torch
from trl import GRPOConfig

from real_trl.layout import check_layout
from real_trl.losses import LABEL_RULES, REAL_LOSS_TYPES

# Loss types GRPOTrainer implements itself (trl 1.16); they run through its code untouched.
# GSPO is loss_type="grpo" with importance_sampling_level="sequence".
TRL_LOSS_TYPES = ("grpo", "dapo", "dr_grpo", "bnpo", "cispo", "sapo", "luspo", "vespo")


# GRPO settings the REAL losses do not read (the score is measured against the policy that generated
# the batch, as in the paper); a non-default value is ignored with one warning. The vllm_importance_sampling_*
# settings still decide what TRL computes and logs around the loss (the ratio, its metrics). One exception:
# importance_sampling_level also shapes the ratio of GRPO's bias-corrected KL term, and REAL's KL term
# is GRPO's, so with beta > 0 and use_bias_correction_kl it applies there.
GRPO_ONLY_SETTINGS = (
    "epsilon",
    "epsilon_high",
    "delta",
    "importance_sampling_level",
    "scale_rewards",
    "multi_objective_aggregation",
    "off_policy_mask_threshold",
    "sapo_temperature_neg",
    "sapo_temperature_pos",
    "vespo_k_pos",
    "vespo_lambda_pos",
    "vespo_k_neg",
    "vespo_lambda_neg",
    "vllm_importance_sampling_correction",
    "vllm_importance_sampling_mode",
    "vllm_importance_sampling_clip_max",
    "vllm_importance_sampling_clip_min",
    "vllm_importance_sampling_cap",
)
# Tokens per tile of TRL's fused LM head (`trl.kernels.chunked_logprob.TOKEN_CHUNK_SIZE`): TRL's own, and the
# tile `logprob_chunk_size=None` picks where TRL folds tiles in plain torch (CPU, MPS), whose temporaries take
# about 1 MiB per token of tile with a 151,936-token vocabulary. tests/test_trl_hooks.py holds TRL's to 4096.
TRL_LOGPROB_TILE = 4096
TORCH_FALLBACK_LOGPROB_TILE = 256
_DEFAULT_SAVE_STEPS = next(f.default for f in fields(GRPOConfig) if f.name == "save_steps")
_GRPO_DEFAULTS = {f.name: f.default for f in fields(GRPOConfig) if f.name in GRPO_ONLY_SETTINGS}


@dataclass
class REALConfig(GRPOConfig):
    r"""
    Configuration for [`REALTrainer`]: every [`~trl.GRPOConfig`] field, plus REAL's.

    With `loss_type` set to one of TRL's losses (`"grpo"`, `"dapo"`, ...) the loss is GRPOTrainer's,
    unchanged, so baselines and REAL share recipes. With a REAL loss type the GRPO-only settings
    (`GRPO_ONLY_SETTINGS`: clipping, importance sampling, reward scaling, ...) do not apply; a value
    other than the default is ignored with a warning. With `beta > 0` the KL penalty to the reference
    model is GRPO's term (k3, `use_bias_correction_kl`, per-sequence token mean, batch mean); the entropy
    bonus (static or adaptive) and `top_entropy_quantile` are GRPO's too, and tests check them equal.
    On a machine without an accelerator, `bf16` defaults to False instead of failing.

    Parameters:
        loss_type (`str`, *optional*, defaults to `"real"`):
            `"real"` (the paper's anchored loss), `"real_product"` (product-style ablation), `"bce"`
            (vanilla BCE ablation), or any TRL loss type.
        tau (`float`, *optional*, defaults to `0.5`):
            Temperature of the classifier logit s / tau. Bounds each sample's gradient weight by 1 / tau.
        label_rule (`str`, *optional*, defaults to `"threshold"`):
            `"threshold"` (the paper: positive when the weighted reward exceeds `label_threshold`) or
            `"group_mean"` (positive above the group's mean reward, negative below, ties carry no signal).
        label_threshold (`float`, *optional*, defaults to `0.5`):
            The threshold of `label_rule="threshold"`.
        skip_no_signal (`bool`, *optional*, defaults to `True`):
            Skip the forward and backward passes of rows that carry no gradient (groups without a positive
            and a negative, unscorable completions). Same parameter updates, less work.
        whole_groups_per_step (`bool`, *optional*, defaults to `False`):
            With a TRL loss type: cut each generation batch into micro-steps of whole groups with the planner
            the REAL losses use, so every optimizer step holds whole groups (as in the official runs); the loss
            itself stays GRPOTrainer's. The REAL losses always plan whole groups.
        logprob_chunk_size (`int` or `None`, *optional*, defaults to `None`):
            Tokens per tile of TRL's fused LM head for the REAL loss types (training, pi_old, reference and
            evaluation forwards, and their backward). TRL never builds the full logits: it projects tiles of
            tokens x 32,768 vocabulary columns and recomputes them in the backward. `None`: TRL's tile (4096) where
            TRL runs its Triton kernel (CUDA, XPU), 256 elsewhere, where TRL's torch fallback holds about 1 MiB
            per token of tile. `0`: TRL's tile everywhere. `N > 0`: N tokens. Same log-probs; the weight gradient
            differs by float32 summation order only. TRL's loss types keep GRPOTrainer's tile.
    """

    loss_type: str = field(
        default="real",
        metadata={
            "help": "Loss: 'real' (REAL, the paper's anchored loss), 'real_product' (product-style variant), 'bce' "
            "(vanilla BCE variant), or a TRL loss type run by GRPOTrainer unchanged: "
            + ", ".join(repr(t) for t in TRL_LOSS_TYPES)
            + " (GSPO: 'grpo' with importance_sampling_level='sequence')."
        },
    )
    tau: float = field(
        default=0.5,
        metadata={"help": "REAL temperature: the classifier logit is s / tau. The paper uses 0.5. Must be > 0."},
    )
    label_rule: str = field(
        default="threshold",
        metadata={
            "help": "How rewards become labels. 'threshold' (the paper): positive when the weighted reward exceeds "
            "label_threshold. 'group_mean' (an extension for rewards that are not 0/1): positive above the mean "
            "reward of its group, negative below it; ties and all-equal groups carry no signal. Completions every "
            "reward function returned None for are excluded under both rules."
        },
    )
    label_threshold: float = field(
        default=0.5,
        metadata={
            "help": "With label_rule='threshold': a completion is positive when its weighted reward exceeds this "
            "threshold, negative otherwise. With a 0/1 verifier and 0.5 the label is the reward, as in the paper."
        },
    )
    skip_no_signal: bool = field(
        default=True,
        metadata={
            "help": "Skip the forward and backward passes of rows whose gradient is exactly zero (groups without both "
            "a positive and a negative, unscorable completions): the same parameter updates for less work. Only "
            "when nothing else gives those rows a gradient (beta 0, no entropy bonus, top_entropy_quantile 1, no "
            "router loss); set false for metrics such as entropy over every row."
        },
    )

    whole_groups_per_step: bool = field(
        default=False,
        metadata={
            "help": "With a TRL loss type (grpo, dapo, ...): plan each generation batch at group level, as the REAL "
            "losses always do, so that every micro-step and so every optimizer step holds whole groups (the official "
            "runs' layout; TRL's per-row shuffle spreads a group over the optimizer steps of its generation batch). "
            "GRPOTrainer's loss is unchanged. Needs per_device_train_batch_size x processes to be a multiple of "
            "num_generations."
        },
    )

    logprob_chunk_size: int | None = field(
        default=None,
        metadata={
            "help": "Tokens per tile of TRL's fused LM head for the REAL loss types (TRL never builds the full logits: "
            "tiles of tokens x 32,768 vocabulary columns, recomputed in the backward). None (default): TRL's 4096 "
            "where TRL runs its Triton kernel (CUDA, XPU), 256 elsewhere (TRL's torch fallback holds about 1 MiB per "
            "token of tile); 0: TRL's tile everywhere (TRL's path); N > 0: N tokens. Same log-probs; TRL's loss "
            "types keep GRPOTrainer's tile."
        },
    )

    def __post_init__(self):
        if self.logprob_chunk_size is not None and self.logprob_chunk_size < 0:
            raise ValueError(
                f"logprob_chunk_size must be >= 0 (got {self.logprob_chunk_size}): leave it unset for the automatic "
                "tile, 0 for TRL's, or a number of tokens."
            )
        if self.loss_type not in REAL_LOSS_TYPES + TRL_LOSS_TYPES:
            raise ValueError(
                f"Unknown loss_type {self.loss_type!r}. Choose one of {', '.join(REAL_LOSS_TYPES + TRL_LOSS_TYPES)}."
            )
        if not self.tau > 0:
            raise ValueError(f"tau must be > 0 (got {self.tau}); the paper uses tau=0.5.")
        if self.label_rule not in LABEL_RULES:
            raise ValueError(f"Unknown label_rule {self.label_rule!r}. Choose one of {', '.join(LABEL_RULES)}.")
        if self.bf16 is None and not self.fp16 and not _has_accelerator(self.use_cpu):
            self.bf16 = False  # GRPOConfig would default to bf16 and then fail on a CPU-only machine
        derived_generation_batch = self.generation_batch_size is None and self.steps_per_generation is None
        try:
            super().__post_init__()
        except ValueError as error:
            if derived_generation_batch and "generation_batch_size" in str(error):
                raise ValueError(self._generation_batch_message()) from error
            raise
        if self.loss_type in REAL_LOSS_TYPES:
            self._check_real_settings()
        else:
            if self.whole_groups_per_step:
                check_layout(self.per_device_train_batch_size, self.world_size, self.num_generations)
            if self.logprob_chunk_size is not None:
                warnings.warn(
                    f"logprob_chunk_size applies to the REAL loss types; loss_type={self.loss_type!r} keeps "
                    f"GRPOTrainer's tile of {TRL_LOGPROB_TILE} tokens",
                    UserWarning,
                    stacklevel=3,
                )

    @property
    def uses_real_loss(self) -> bool:
        return self.loss_type in REAL_LOSS_TYPES

    def _align_save_steps(self, optimizer_steps: int) -> None:
        """Checkpoints must fall between generation batches: one inside a batch would lose the batch in
        progress, and the resumed run would differ. Refuse a save_steps that is not a multiple of the
        optimizer steps per generation batch; move TrainingArguments' default (500) down to one."""
        if self.save_steps < 1 or self.save_steps % optimizer_steps == 0:
            return
        if self.save_steps == _DEFAULT_SAVE_STEPS:
            self.save_steps = max(optimizer_steps, _DEFAULT_SAVE_STEPS // optimizer_steps * optimizer_steps)
            return
        raise ValueError(
            f"save_steps ({self.save_steps:g}) must be a multiple of the {optimizer_steps} optimizer steps per "
            "generation batch, or a checkpoint would lose the batch in progress and a resumed run would differ; "
            f"set save_steps to a multiple of {optimizer_steps}."
        )

    def _generation_batch_message(self) -> str:
        """GRPOConfig's complaint about `generation_batch_size`, which it derived, in the fields the user set."""
        processes = int(os.environ.get("WORLD_SIZE", "1"))
        total = self.per_device_train_batch_size * processes * self.gradient_accumulation_steps
        return (
            f"per_device_train_batch_size ({self.per_device_train_batch_size}) x processes ({processes}) x "
            f"gradient_accumulation_steps ({self.gradient_accumulation_steps}) = {total} completions per generation "
            f"batch must be a multiple of num_generations ({self.num_generations}); raise "
            "per_device_train_batch_size, gradient_accumulation_steps or steps_per_generation, or lower "
            "num_generations."
        )

    def _check_real_settings(self):
        check_layout(self.per_device_train_batch_size, self.world_size, self.num_generations)
        steps_per_batch = self.steps_per_generation * self.num_iterations
        if steps_per_batch % self.gradient_accumulation_steps == 0 and self.save_strategy == "steps":
            self._align_save_steps(steps_per_batch // self.gradient_accumulation_steps)
        kl_ratio_level = self.beta != 0.0 and self.use_bias_correction_kl
        changed = [
            f"{name}={getattr(self, name)!r}"
            for name, default in _GRPO_DEFAULTS.items()
            if getattr(self, name) != default and not (name == "importance_sampling_level" and kl_ratio_level)
        ]
        ignored = [setting for setting in changed if not setting.startswith("vllm_importance_sampling")]
        if ignored:
            warnings.warn(
                f"loss_type={self.loss_type!r} ignores these GRPO-only settings: " + ", ".join(ignored),
                UserWarning,
                stacklevel=3,
            )
        sampling = [setting for setting in changed if setting.startswith("vllm_importance_sampling")]
        if sampling:
            warnings.warn(
                f"loss_type={self.loss_type!r} does not apply TRL's vLLM importance-sampling ratio (its score is "
                "measured against pi_old, which the trainer recomputes), so its loss is the same with "
                + ", ".join(sampling)
                + "; these only decide whether TRL computes the ratio and logs sampling/importance_sampling_ratio "
                "(sampling/sampling_logp_difference is logged either way)",
                UserWarning,
                stacklevel=3,
            )


def logprob_tile(logprob_chunk_size: int | None, triton_kernel: bool) -> int:
    """Tokens per tile of TRL's fused LM head that `REALConfig.logprob_chunk_size` asks for.

    Args:
        logprob_chunk_size: None (automatic), 0 (TRL's tile) or a number of tokens.
        triton_kernel: whether TRL folds the tiles with its Triton kernel on the training device (CUDA, XPU).
    """
    if logprob_chunk_size is None:
        return TRL_LOGPROB_TILE if triton_kernel else TORCH_FALLBACK_LOGPROB_TILE
    return logprob_chunk_size or TRL_LOGPROB_TILE


def _has_accelerator(use_cpu: bool) -> bool:
    if use_cpu:
        return False
    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())
