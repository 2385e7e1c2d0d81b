"""REALTrainer vs GRPOTrainer on the same tiny setup: step time, peak memory, loss traffic.

Every trainer runs the same model, data and fixed rollouts (no generation noise), alternating rounds
in one process, and the script prints ratios measured in this run:

* for each share of groups that carry signal (a positive and a negative), the step time of REAL
  skipping the rows without signal (`skip_no_signal=True`, the default), of REAL without skipping, and
  of GRPO; with the ratios REAL-skip / GRPO and REAL-skip / REAL-no-skip;
* the share of the step time that the pi_old forward pass takes: TRL computes it over every row of the
  generation batch, before the rewards exist, so it cannot be skipped;
* the peak memory REAL / GRPO (the CUDA allocator's peak on a GPU; on CPU, peak resident set size of a
  fresh subprocess per trainer);
* the bytes REAL's loss exchanges per micro-step against gathering token-level log-probs, at the
  paper's shapes.

    python bench/trainer_overhead.py [--rounds 3] [--steps 4] [--shares 1.0 0.75 0.5 0.25]
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import torch
from datasets import Dataset
from transformers import PrinterCallback
from trl import GRPOTrainer

from real_trl import REALConfig, REALTrainer
from real_trl.losses import SequenceStats
from real_trl.tiny import build_tiny_model, build_tiny_tokenizer

GROUP_SIZE = 8
PROMPTS = [[{"role": "user", "content": f"Problem {i}: " + "x" * (i % 17)}] for i in range(256)]
METHODS = ("real", "real_noskip", "grpo")


def rollout(prompts, trainer):
    """Fixed completions; member j of a group gets a completion of a length with parity j % 2."""
    tokenizer = trainer.processing_class
    prompt_ids, completion_ids = [], []
    for i, prompt in enumerate(prompts):
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        prompt_ids.append(tokenizer(text)["input_ids"])
        length = 48 + 2 * ((i * 37) % 40) + i % GROUP_SIZE % 2
        completion_ids.append([10 + (i * 7 + t * 13) % 200 for t in range(length)] + [tokenizer.eos_token_id])
    return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None}


def signal_reward(share: float):
    """In the first `share` of every 4 groups odd-length completions are correct; the other groups are all
    wrong: each generation batch has exactly that share of groups with signal."""

    def reward(completion_ids, **kwargs):
        mixed = [row // GROUP_SIZE % 4 < share * 4 for row in range(len(completion_ids))]
        return [float(m and len(ids) % 2 == 1) for m, ids in zip(mixed, completion_ids, strict=True)]

    reward.__name__ = "signal_reward"
    return reward


def build(method: str, steps: int, share: float = 0.5):
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(tokenizer, hidden_size=128, num_layers=4, seed=0)
    args = REALConfig(
        output_dir=f"/tmp/real-bench-{method}",
        loss_type="grpo" if method == "grpo" else "real",
        skip_no_signal=method == "real",
        per_device_train_batch_size=16,
        num_generations=GROUP_SIZE,
        gradient_accumulation_steps=2,
        steps_per_generation=8,  # 4 optimizer steps per generation batch, as in the paper
        max_completion_length=160,
        max_steps=steps,
        report_to=[],
        save_strategy="no",
        use_cpu=not torch.cuda.is_available(),
        bf16=False,
        disable_tqdm=True,
        logging_strategy="no",
        seed=0,
    )
    trainer_class = GRPOTrainer if method == "grpo" else REALTrainer
    trainer = trainer_class(
        model=model,
        reward_funcs=[signal_reward(share)],
        args=args,
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tokenizer,
        rollout_func=rollout,
    )
    trainer.remove_callback(PrinterCallback)  # the final train_runtime line would interleave with the table
    return trainer


def timed_run(method: str, steps: int, share: float) -> tuple[float, float]:
    """Seconds per optimizer step, and the seconds of it spent in the pi_old forward (no-grad log-probs)."""
    trainer = build(method, steps, share)
    compute_logps, old_logp_seconds = trainer._get_per_token_logps_and_entropies, [0.0]

    def timed(*args, **kwargs):
        start = time.perf_counter()
        out = compute_logps(*args, **kwargs)
        if not torch.is_grad_enabled():
            old_logp_seconds[0] += time.perf_counter() - start
        return out

    trainer._get_per_token_logps_and_entropies = timed
    start = time.perf_counter()
    trainer.train()
    return (time.perf_counter() - start) / steps, old_logp_seconds[0] / steps


def peak_memory_mib(method: str, steps: int) -> float:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        build(method, steps).train()
        return torch.cuda.max_memory_allocated() / 2**20
    # CPU: a fresh process per trainer reports its own peak RSS (KiB on Linux)
    code = (
        f"import resource, trainer_overhead as b; b.build({method!r}, {steps}).train(); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=Path(__file__).parent, capture_output=True, text=True
    )
    return int(done.stdout.split()[-1]) / 1024


def loss_traffic(rollouts=1024, tokens=8192, processes=8, per_device=4):
    micro = processes * per_device
    real_bytes = micro * len(fields(SequenceStats)) * 8  # float64 values per sequence
    token_bytes = micro * tokens * (4 + 1)  # fp32 log-probs + a mask byte per token
    return {
        "micro_step_sequences": micro,
        "real_loss_bytes_per_micro_step": real_bytes,
        "token_logp_gather_bytes_per_micro_step": token_bytes,
        "ratio_token_over_real": token_bytes / real_bytes,
        "token_logp_gather_bytes_whole_batch": rollouts * tokens * 5,
    }


def skipping_table(shares: list[float], rounds: int, steps: int) -> None:
    print(
        "share with signal | REAL-skip ms | REAL-no-skip ms | GRPO ms | skip/GRPO | skip/no-skip | "
        "pi_old share of skip step"
    )
    for share in shares:
        times = {method: [] for method in METHODS}
        old_logp = []
        for _ in range(rounds):
            for method in METHODS:
                step, old = timed_run(method, steps, share)
                times[method].append(step)
                if method == "real":
                    old_logp.append(old / step)
        real, no_skip, grpo = (statistics.median(times[m]) for m in METHODS)
        print(
            f"{share:17.2f} | {real * 1e3:12.1f} | {no_skip * 1e3:15.1f} | {grpo * 1e3:7.1f} | {real / grpo:9.3f} | "
            f"{real / no_skip:12.3f} | {statistics.median(old_logp):.3f}",
            flush=True,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--shares", type=float, nargs="+", default=[1.0, 0.75, 0.5, 0.25])
    args = parser.parse_args()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {device}")
    for method in METHODS:  # warm-up
        timed_run(method, 1, 1.0)
    skipping_table(args.shares, args.rounds, args.steps)
    real_mem, grpo_mem = peak_memory_mib("real", args.steps), peak_memory_mib("grpo", args.steps)
    print(f"peak memory REAL {real_mem:.0f} MiB  GRPO {grpo_mem:.0f} MiB  ratio REAL/GRPO {real_mem / grpo_mem:.3f}")
    print("loss traffic (paper shapes):", json.dumps(loss_traffic(), indent=1))


if __name__ == "__main__":
    main()
