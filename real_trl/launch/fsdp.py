"""Float32 gradient reduction on FSDP2, as the official runs reduced their gradients.

accelerate builds FSDP2's mixed-precision policy from its `mixed_precision` alone, with the reduce dtype
equal to the compute dtype (bf16), and offers no setting to change it; transformers' `fsdp_config` forwards
none either. Under gradient accumulation the Trainer also skips the reduce-scatter on all but the last
micro-step (`no_sync`), so the micro-steps' gradients are summed unsharded in that same dtype. The official
release (verl, FSDP1) instead reduce-scatters after every micro-step in float32 into float32 shards.
`reduce_fsdp2_gradients_in_float32` gives a trainer that pattern; the launcher calls it, and a library user
can call it on their own trainer between construction and `train()`.
"""

from __future__ import annotations

import dataclasses

import torch


def reduce_fsdp2_gradients_in_float32(trainer) -> bool:
    """On FSDP2 with bf16 mixed precision, reduce and accumulate `trainer`'s gradients in float32.

    Sets the FSDP2 plugin's `MixedPrecisionPolicy` to compute in bf16 (parameters and outputs) and reduce
    in float32, and turns on accelerate's `sync_each_batch`, so each micro-step's gradient is reduce-scattered
    in float32 and added to the float32 gradient shards. Without `sync_each_batch` the micro-steps would be
    summed in an unsharded float32 gradient of the whole model on every process until the last one (7 GB at
    1.78e9 parameters); with it, every micro-step costs one reduce-scatter instead of one per optimizer step.

    Call it after the trainer is built and before `train()` (the policy is read when the model is wrapped).
    Anything other than FSDP2 with bf16 mixed precision is left as it is.

    Args:
        trainer: a `transformers.Trainer` (`REALTrainer`, `GRPOTrainer`, ...), not yet trained.

    Returns:
        Whether the trainer was changed.
    """
    accelerator = trainer.accelerator
    if not accelerator.is_fsdp2 or accelerator.mixed_precision != "bf16":  # is_fsdp2 first: no plugin otherwise
        return False
    from torch.distributed.fsdp import MixedPrecisionPolicy

    plugin = accelerator.state.fsdp_plugin
    policy = plugin.mixed_precision_policy
    if isinstance(policy, MixedPrecisionPolicy):
        policy = dataclasses.replace(policy, reduce_dtype=torch.float32)
    else:  # not built yet (accelerate builds it on accelerators only): the one it would build, reducing in float32
        policy = MixedPrecisionPolicy(
            param_dtype=torch.bfloat16, reduce_dtype=torch.float32, output_dtype=torch.bfloat16
        )
    plugin.mixed_precision_policy = policy
    # The Trainer reads this before every micro-step: reduce-scatter each one instead of accumulating unsharded.
    accelerator.gradient_state.plugin_kwargs["sync_each_batch"] = True
    return True
