"""One REAL run, uninterrupted and resumed from its checkpoints: the parameters each ends with.

Imported by tests/test_resume.py for one process, and launched by it under torchrun for two. The
uninterrupted run saves a checkpoint at every generation-batch boundary; each resumed run starts a
fresh trainer (scrambled RNGs, as a new process would have) from one of them and trains to the same
`max_steps`. The checkpoints fall in the first epoch and in the second, so the sampler's shuffle of a
later epoch is part of what must be restored.

usage: resume_worker.py OUT_DIR OPTIMIZER:GENERATION ...   (OPTIMIZER: sgd or adamw; GENERATION: rollout or sample)
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset

from real_trl import REALConfig, REALTrainer
from real_trl.tiny import build_tiny_model, build_tiny_tokenizer

from helpers import parity_reward, rollout

MAX_STEPS = 8  # two epochs of four optimizer steps
SAVE_STEPS = 2  # the optimizer steps of one generation batch
RESUME_STEPS = (2, 6)  # a checkpoint in the first epoch, and one in the second
OPTIMIZERS = {
    "sgd": {"optim": "sgd", "learning_rate": 0.5, "max_grad_norm": 0.0},
    "adamw": {"optim": "adamw_torch", "learning_rate": 1e-2},
}


def make_trainer(output_dir: Path, optimizer: str, generation: str, world_size: int) -> REALTrainer:
    """A REAL trainer on 8 prompts; 16 completions per generation batch over all processes."""
    tokenizer = build_tiny_tokenizer()
    prompts = [[{"role": "user", "content": "q" * (1 + i % 3) + f" {i}"}] for i in range(8)]
    args = REALConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=4 // world_size,
        gradient_accumulation_steps=2,
        steps_per_generation=4,
        num_generations=4,
        max_completion_length=8,
        max_steps=MAX_STEPS,
        save_strategy="steps",
        save_steps=SAVE_STEPS,
        lr_scheduler_type="linear",
        weight_decay=0.0,
        seed=1234,
        report_to=[],
        logging_steps=1,
        use_cpu=True,
        bf16=False,
        disable_tqdm=True,
        **OPTIMIZERS[optimizer],
    )
    return REALTrainer(
        model=build_tiny_model(tokenizer, seed=0),
        reward_funcs=[parity_reward],
        args=args,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=tokenizer,
        rollout_func=rollout if generation == "rollout" else None,
    )


def _parameters(trainer: REALTrainer) -> dict[str, torch.Tensor]:
    state = trainer.accelerator.get_state_dict(trainer.model_wrapped)
    return {name: value.detach().float().cpu().clone() for name, value in state.items()}


def _losses(trainer: REALTrainer) -> dict[int, float]:
    return {entry["step"]: entry["loss"] for entry in trainer.state.log_history if "loss" in entry}


def _scramble_rngs(rank: int) -> None:
    """What a new process would hold: nothing of the interrupted run's random state."""
    torch.manual_seed(987 + rank)
    random.seed(987 + rank)
    np.random.seed(987 + rank)


def run_case(out_dir: Path, optimizer: str, generation: str) -> dict:
    """Train uninterrupted, then resume from each checkpoint in `RESUME_STEPS`; return what each ended with:
    {"full": ..., "resumed_from_<step>": ...}, each {"parameters": name -> tensor, "losses": step -> loss}."""
    world_size, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    full = make_trainer(out_dir / "full", optimizer, generation, world_size)
    full.train()
    results = {"full": {"parameters": _parameters(full), "losses": _losses(full)}}
    del full
    for step in RESUME_STEPS:
        _scramble_rngs(rank)
        resumed = make_trainer(out_dir / f"resumed_from_{step}", optimizer, generation, world_size)
        resumed.train(resume_from_checkpoint=str(out_dir / "full" / f"checkpoint-{step}"))
        results[f"resumed_from_{step}"] = {"parameters": _parameters(resumed), "losses": _losses(resumed)}
        del resumed
    return results


if __name__ == "__main__":
    out = Path(sys.argv[1])
    for case in sys.argv[2:]:
        optimizer, generation = case.split(":")
        results = run_case(out / case.replace(":", "_"), optimizer, generation)
        if int(os.environ.get("RANK", "0")) == 0:
            torch.save(results, out / f"{case.replace(':', '_')}.pt")
    if torch.distributed.is_initialized():  # an exit with gloo's threads still running can abort
        torch.distributed.destroy_process_group()
