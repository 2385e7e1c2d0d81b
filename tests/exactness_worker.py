"""Runs REALTrainer on a fixed generation batch and saves the trained parameters.

Launched by tests/test_distributed.py under torchrun or accelerate with 1 or 2 processes. Rollouts
come from a deterministic `rollout_func`: completion j of a prompt depends only on the prompt and on
j, so every layout trains on the same generation batch. SGD without clipping makes the parameter
change a plain multiple of the gradient, so a wrong gradient scale cannot hide behind Adam.

usage: worker.py OUT_DIR CASE=per_device,grad_accum,steps_per_generation,num_generations,num_iterations,max_steps,
       loss_type,skip|noskip,parity|sparse,sgd|adamw,trl|TILE ...
A TRL loss type (grpo, dapo, ...) runs with `whole_groups_per_step` and TRL's tile. The last field picks the
log-prob path of the REAL losses: `trl`, GRPOTrainer's (TRL's tile, TRL's pi_old forward over every row), or
REAL's with tiles of TILE tokens (`logprob_chunk_size`) and pi_old over the trained rows. Each process also
writes the log-prob forwards it ran in training (CASE.forwards.RANK: calls and rows without gradient, i.e.
pi_old, and the tiles of the fused head).
"""

import json
import os
import sys
from pathlib import Path

import torch
from datasets import Dataset
from trl.kernels import chunked_logprob

from real_trl import REALConfig, REALTrainer
from real_trl.losses import REAL_LOSS_TYPES
from real_trl.tiny import build_tiny_model, build_tiny_tokenizer

from helpers import allow_fsdp_on_cpu, parity_reward, rollout


def sparse_reward(completions, prompts, **kwargs):
    """Parity for one prompt in eight, 0 for the rest: most groups carry no signal, and some optimizer
    steps none at all, so skipping leaves processes with nothing to train on."""
    return [
        float(len(c[0]["content"]) % 2) if int(p[0]["content"].split()[-1]) % 8 == 0 else 0.0
        for c, p in zip(completions, prompts, strict=True)
    ]


REWARDS = {"parity": parity_reward, "sparse": sparse_reward}


def record_forwards(trainer) -> dict:
    """Count the trainer's log-prob forwards in training: no-grad ones (pi_old) and the tiles of all."""
    counts = {"pi_old_calls": 0, "pi_old_rows": 0, "tiles": []}
    compute = trainer._get_per_token_logps_and_entropies

    def counted(model, input_ids, *args, **kwargs):
        logps = compute(model, input_ids, *args, **kwargs)
        if not torch.is_grad_enabled() and logps[0] is not None:
            counts["pi_old_calls"] += 1
            counts["pi_old_rows"] += input_ids.size(0)
        counts["tiles"] = sorted({*counts["tiles"], chunked_logprob.TOKEN_CHUNK_SIZE})
        return logps

    trainer._get_per_token_logps_and_entropies = counted
    return counts


def run_case(out_dir: Path, name: str, spec: str) -> None:
    fields = spec.split(",")
    per_device, grad_accum, steps, group, iterations, max_steps = map(int, fields[:6])
    loss_type, skip, reward, optimizer = fields[6:10]
    trls_path = fields[10] == "trl"
    tile = 0 if trls_path else int(fields[10])
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(tokenizer, seed=0)
    prompts = [[{"role": "user", "content": "q" * (1 + i % 5) + f" {i}"}] for i in range(64)]
    args = REALConfig(
        output_dir=str(out_dir / name),
        loss_type=loss_type,
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=grad_accum,
        steps_per_generation=steps,
        num_generations=group,
        num_iterations=iterations,
        max_steps=max_steps,
        max_completion_length=16,
        skip_no_signal=skip == "skip",
        whole_groups_per_step=loss_type not in REAL_LOSS_TYPES,  # TRL's loss on the group-level plan
        logprob_chunk_size=tile if loss_type in REAL_LOSS_TYPES else None,
        optim="sgd" if optimizer == "sgd" else "adamw_torch",
        learning_rate=0.5 if optimizer == "sgd" else 1e-2,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=0.0 if optimizer == "sgd" else 1.0,
        beta=0.0,
        seed=1234,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        use_cpu=True,
        bf16=False,  # TRL defaults to bf16 autocast; exactness is checked in float32
        disable_tqdm=True,
    )
    trainer = REALTrainer(
        model=model,
        reward_funcs=[REWARDS[reward]],
        args=args,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=tokenizer,
        rollout_func=rollout,
    )
    if trls_path:
        trainer._defers_pi_old = lambda: False
    forwards = record_forwards(trainer)
    trainer.train()
    (out_dir / f"{name}.forwards.{trainer.accelerator.process_index}").write_text(json.dumps(forwards))
    if os.environ.get("ACCELERATE_USE_FSDP") == "true":  # make sure the parameters really were sharded
        assert trainer.accelerator.is_fsdp2, trainer.accelerator.distributed_type
        assert type(next(trainer.model_wrapped.parameters())).__name__ == "DTensor"
    state = trainer.accelerator.get_state_dict(trainer.model_wrapped)
    if trainer.accelerator.is_main_process:
        torch.save({k: v.detach().float().cpu() for k, v in state.items()}, out_dir / f"{name}.pt")
        # micro-steps of the last generation batch in which this process had no row to train on
        placeholders = sum("real_placeholder" in micro for micro in trainer._buffered_inputs)
        (out_dir / f"{name}.placeholders").write_text(str(placeholders))
    trainer.accelerator.wait_for_everyone()


if __name__ == "__main__":
    if os.environ.get("ACCELERATE_USE_FSDP") == "true":
        allow_fsdp_on_cpu()
    out = Path(sys.argv[1])
    for case in sys.argv[2:]:
        case_name, spec = case.split("=")
        run_case(out, case_name, spec)
    if torch.distributed.is_initialized():  # an exit with gloo's threads still running can abort
        torch.distributed.destroy_process_group()
