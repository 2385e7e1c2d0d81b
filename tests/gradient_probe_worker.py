"""Measures the dtype an engine reduces gradients in and the dtype it accumulates them in.

Launched by tests/test_gradient_precision.py with `accelerate launch --config_file CONFIG --num_processes 2`
(DeepSpeed ZeRO-2/3 and FSDP2 on CPU, bf16 on, as the recipes train). A transformers Trainer (the loop
GRPOTrainer, and so REALTrainer, inherits) trains the tiny Qwen2 plus one extra parameter, `probe`, for one
optimizer step of 4 micro-steps with SGD at lr 1 and no clipping or weight decay. The loss is
`sum(probe * c)` with c chosen per process and micro-step among powers of two, so the probe's gradient is
exactly c in bfloat16 and its float32 master value after the step is minus the reduced, accumulated
gradient, read exactly:

- unit: 1 at micro-step 0 on both processes: the scale every other element is read against;
- accumulated: 1 at micro-step 0, then 2^-9 at micro-steps 1-3, on both processes: 1 + 3 * 2^-9 when the
  micro-steps are summed in float32; bfloat16 (8 significant bits) rounds each sum back to 1;
- reduced: 1 on process 0 and 2^-8 on process 1, at micro-step 0: (1 + 2^-8) / 2 when the processes' gradients
  are summed in float32; in bfloat16 1 + 2^-8 rounds to 1.

usage: gradient_probe_worker.py OUT_DIR CASE ... with CASE "deepspeed" (the launch's DeepSpeed config as it is),
"fsdp2_accelerate" (FSDP2 with accelerate's mixed-precision policy) or "fsdp2_launcher" (the same, then
`real_trl.launch.fsdp.reduce_fsdp2_gradients_in_float32`, as the launcher calls it). Writes OUT_DIR/CASE.json.
"""

import json
import os
import sys
from pathlib import Path

import torch
from datasets import Dataset
from transformers import Qwen2ForCausalLM, Trainer, TrainingArguments

from real_trl.launch.fsdp import reduce_fsdp2_gradients_in_float32
from real_trl.tiny import build_tiny_model, build_tiny_tokenizer

from helpers import allow_fsdp_on_cpu

ACCUMULATION_STEPS = 4
UNIT, ACCUMULATED, REDUCED = range(3)


def probe_coefficients(rank: int, micro_step: int) -> torch.Tensor:
    """c of `sum(probe * c)` on process `rank` at `micro_step` (see the module docstring)."""
    c = torch.zeros(3)
    c[UNIT] = 1.0 if micro_step == 0 else 0.0
    c[ACCUMULATED] = 1.0 if micro_step == 0 else 2.0**-9
    c[REDUCED] = (1.0 if rank == 0 else 2.0**-8) if micro_step == 0 else 0.0
    return c


class ProbedQwen2(Qwen2ForCausalLM):
    """The tiny Qwen2 with a root parameter whose gradient the loss sets exactly. The model's own forward still
    runs (ZeRO-3 and FSDP gather its weights), at weight 0."""

    def __init__(self, config):
        super().__init__(config)
        self.probe = torch.nn.Parameter(torch.zeros(3))

    def forward(self, input_ids=None, probe_c=None, **kwargs):
        output = super().forward(input_ids=input_ids, labels=input_ids, **kwargs)
        output.loss = 0.0 * output.loss + (self.probe * probe_c.to(self.probe.dtype)).sum()
        return output


class ProbeTrainer(Trainer):
    micro_step = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        c = probe_coefficients(self.accelerator.process_index, self.micro_step).to(inputs["input_ids"].device)
        self.micro_step += 1
        return model(input_ids=inputs["input_ids"], probe_c=c).loss


def master_probe(trainer) -> torch.Tensor:
    """The float32 value the optimizer stepped: DeepSpeed's master partition, FSDP2's sharded parameter."""
    probe = dict(trainer.model.named_parameters())["probe"]
    if trainer.is_deepspeed_enabled:
        from deepspeed.utils import safe_get_full_fp32_param

        return safe_get_full_fp32_param(probe)
    return probe.full_tensor() if type(probe).__name__ == "DTensor" else probe.detach()


def engine_facts(trainer, case: str) -> dict:
    """What the run really was: mixed precision on, and the settings that decide the gradient dtypes."""
    facts = {"mixed_precision": trainer.accelerator.mixed_precision}
    if trainer.is_deepspeed_enabled:
        engine = trainer.model_wrapped
        model_dtype, accumulation_dtype = engine.get_data_types()
        facts |= {
            "bf16_enabled": engine.bfloat16_enabled(),
            "zero_stage": engine.zero_optimization_stage(),
            "communication_dtype": str(engine.communication_data_type),
            "model_dtype": str(model_dtype),
            "grad_accum_dtype": str(accumulation_dtype),
        }
    else:
        policy = trainer.accelerator.state.fsdp_plugin.mixed_precision_policy
        facts |= {
            "fsdp2": trainer.accelerator.is_fsdp2,
            "sharded": type(next(trainer.model_wrapped.parameters())).__name__ == "DTensor",
            "param_dtype": str(policy.param_dtype),
            "reduce_dtype": str(policy.reduce_dtype),
            "sync_each_batch": trainer.accelerator.gradient_state.plugin_kwargs.get("sync_each_batch", False),
            "launcher_changed_it": case == "fsdp2_launcher",
        }
    return facts


def run_case(out_dir: Path, case: str) -> None:
    tokenizer = build_tiny_tokenizer()
    tiny = build_tiny_model(tokenizer, seed=0)
    model = ProbedQwen2(tiny.config)
    model.load_state_dict(tiny.state_dict(), strict=False)
    model.to(torch.bfloat16)  # the recipes' dtype; ZeRO and FSDP2 keep float32 masters of it
    args = TrainingArguments(
        output_dir=str(out_dir / case),
        per_device_train_batch_size=1,
        gradient_accumulation_steps=ACCUMULATION_STEPS,
        max_steps=1,
        optim="sgd",
        learning_rate=1.0,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=0.0,
        bf16=True,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    rows = [{"input_ids": [5 + i % 7, 9, 11, 13, 17, 19]} for i in range(2 * ACCUMULATION_STEPS)]
    trainer = ProbeTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows))
    if case.startswith("fsdp2"):
        # accelerate builds FSDP's mixed-precision policy on accelerators only (state.py), a branch the CPU gate
        # lifted by allow_fsdp_on_cpu never reaches: build the one a GPU run gets (bf16 compute and reduction).
        trainer.accelerator.state.fsdp_plugin.set_mixed_precision(trainer.accelerator.mixed_precision, override=True)
    if case == "fsdp2_launcher":
        assert reduce_fsdp2_gradients_in_float32(trainer)
    trainer.train()
    master = master_probe(trainer).float().cpu()
    result = {"master": [-value for value in master.tolist()], "engine": engine_facts(trainer, case)}
    if trainer.accelerator.is_main_process:
        (out_dir / f"{case}.json").write_text(json.dumps(result, indent=1))
    trainer.accelerator.wait_for_everyone()


if __name__ == "__main__":
    torch.set_num_threads(1)
    if os.environ.get("ACCELERATE_USE_FSDP") == "true":
        allow_fsdp_on_cpu()
    for name in sys.argv[2:]:
        run_case(Path(sys.argv[1]), name)
    if torch.distributed.is_initialized():  # an exit with gloo's threads still running can abort
        torch.distributed.destroy_process_group()
