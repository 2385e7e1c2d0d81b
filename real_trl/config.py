"""REALConfig: GRPOConfig plus the REAL objective's settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig

from real_trl.layout import check_layout

REAL_LOSS_TYPES = ("real", "real_product", "bce")
# Loss types GRPOTrainer implements itself (trl 1.16); they run through its code untouched.
# GSPO is loss_type="grpo" with importance_sampling_level="sequence".
TRL_LOSS_TYPES = ("grpo", "dapo", "dr_grpo", "bnpo", "cispo", "sapo", "luspo", "vespo")


@dataclass
class REALConfig(GRPOConfig):
    r"""
    Configuration for [`REALTrainer`]: every [`~trl.GRPOConfig`] field, plus REAL's.

    With `loss_type` set to one of TRL's losses (`"grpo"`, `"dapo"`, ...) the trainer is GRPOTrainer,
    unchanged, so baselines and REAL share recipes. With a REAL loss type, these GRPO settings do not
    apply and are ignored: `epsilon`, `epsilon_high`, `importance_sampling_level`, `scale_rewards`,
    `multi_objective_aggregation`, `vllm_importance_sampling_*` (the score is measured against the
    policy that generated the batch, as in the paper). `beta > 0` (KL to a reference model) and
    `entropy_coef` work as in GRPO.

    Parameters:
        loss_type (`str`, *optional*, defaults to `"real"`):
            `"real"` (the paper's anchored loss), `"real_product"` (product-style ablation), `"bce"`
            (vanilla BCE ablation), or any TRL loss type.
        tau (`float`, *optional*, defaults to `0.5`):
            Temperature of the classifier logit s / tau. Bounds each sample's gradient weight by 1 / tau.
        label_threshold (`float`, *optional*, defaults to `0.5`):
            A completion is a positive when its weighted reward (sum over reward functions, times
            `reward_weights`) exceeds this value, a negative otherwise; unscorable ones are excluded.
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
    label_threshold: float = field(
        default=0.5,
        metadata={
            "help": "A completion is positive when its weighted reward exceeds this threshold, negative otherwise; "
            "completions every reward function returned None for are excluded. With a 0/1 verifier and 0.5 the "
            "label is the reward, as in the paper."
        },
    )

    def __post_init__(self):
        if self.loss_type not in REAL_LOSS_TYPES + TRL_LOSS_TYPES:
            raise ValueError(
                f"Unknown loss_type {self.loss_type!r}. Choose one of {', '.join(REAL_LOSS_TYPES + TRL_LOSS_TYPES)}."
            )
        if not self.tau > 0:
            raise ValueError(f"tau must be > 0 (got {self.tau}); the paper uses tau=0.5.")
        super().__post_init__()
        if self.loss_type in REAL_LOSS_TYPES:
            self._check_real_settings()

    @property
    def uses_real_loss(self) -> bool:
        return self.loss_type in REAL_LOSS_TYPES

    def _check_real_settings(self):
        unsupported = {
            "use_adaptive_entropy": self.use_adaptive_entropy,
            "top_entropy_quantile": self.top_entropy_quantile < 1.0,
            "off_policy_mask_threshold": self.off_policy_mask_threshold is not None,
            "delta": self.delta is not None,
        }
        named = [name for name, is_set in unsupported.items() if is_set]
        if named:
            raise ValueError(
                f"loss_type={self.loss_type!r} does not support {', '.join(named)}; unset them or use a TRL loss type."
            )
        check_layout(self.per_device_train_batch_size, self.world_size, self.num_generations)
