"""REALTrainer vs GRPOTrainer on the same tiny setup: step time, peak memory, loss traffic.

Both trainers run the same model, data and fixed rollouts (no generation noise), alternating rounds
in one process; the script prints ratios REAL / GRPO measured in this run. Peak memory is the CUDA
allocator's peak on a GPU; on CPU each trainer runs once more in a fresh subprocess and the peak
resident set sizes are compared. It also prints the bytes REAL's loss exchanges per micro-step
against gathering token-level log-probs, for the paper's shapes.

    python bench/trainer_overhead.py [--rounds 5] [--steps 4]
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from datasets import Dataset
from trl import GRPOTrainer

from real_trl import REALConfig, REALTrainer
from real_trl.tiny import build_tiny_model, build_tiny_tokenizer
from real_trl.trainer import _STAT_COLUMNS

PROMPTS = [[{"role": "user", "content": f"Problem {i}: " + "x" * (i % 17)}] for i in range(256)]


def rollout(prompts, trainer):
    tokenizer = trainer.processing_class
    prompt_ids, completion_ids = [], []
    for i, prompt in enumerate(prompts):
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        prompt_ids.append(tokenizer(text)["input_ids"])
        length = 48 + (i * 37) % 80
        completion_ids.append([10 + (i * 7 + t * 13) % 200 for t in range(length)] + [tokenizer.eos_token_id])
    return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None}


def parity_reward(completions, **kwargs):
    return [float(len(c[0]["content"]) % 2) for c in completions]


def build(method: str, steps: int):
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(tokenizer, hidden_size=128, num_layers=4, seed=0)
    args = REALConfig(
        output_dir=f"/tmp/real-bench-{method}",
        loss_type="real" if method == "real" else "grpo",
        per_device_train_batch_size=16,
        num_generations=8,
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
    trainer_class = REALTrainer if method == "real" else GRPOTrainer
    return trainer_class(
        model=model, reward_funcs=[parity_reward], args=args, train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tokenizer, rollout_func=rollout,
    )


def seconds_per_step(method: str, steps: int) -> float:
    trainer = build(method, steps)
    start = time.perf_counter()
    trainer.train()
    return (time.perf_counter() - start) / steps


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
    done = subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent, capture_output=True, text=True)
    return int(done.stdout.split()[-1]) / 1024


def loss_traffic(rollouts=1024, tokens=8192, processes=8, per_device=4):
    micro = processes * per_device
    real_bytes = micro * len(_STAT_COLUMNS) * 8  # float64 values per sequence
    token_bytes = micro * tokens * (4 + 1)  # fp32 log-probs + a mask byte per token
    return {
        "micro_step_sequences": micro,
        "real_loss_bytes_per_micro_step": real_bytes,
        "token_logp_gather_bytes_per_micro_step": token_bytes,
        "ratio_token_over_real": token_bytes / real_bytes,
        "token_logp_gather_bytes_whole_batch": rollouts * tokens * 5,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    times = {"real": [], "grpo": []}
    seconds_per_step("real", 1), seconds_per_step("grpo", 1)  # warm-up
    for _ in range(args.rounds):
        for method in ("real", "grpo"):
            times[method].append(seconds_per_step(method, args.steps))
    real_t, grpo_t = statistics.median(times["real"]), statistics.median(times["grpo"])
    real_mem, grpo_mem = peak_memory_mib("real", args.steps), peak_memory_mib("grpo", args.steps)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {device}")
    print(f"step time  REAL {real_t * 1e3:.1f} ms  GRPO {grpo_t * 1e3:.1f} ms  ratio REAL/GRPO {real_t / grpo_t:.3f}")
    print(f"peak memory REAL {real_mem:.0f} MiB  GRPO {grpo_mem:.0f} MiB  ratio REAL/GRPO {real_mem / grpo_mem:.3f}")
    print("loss traffic (paper shapes):", json.dumps(loss_traffic(), indent=1))


if __name__ == "__main__":
    main()
