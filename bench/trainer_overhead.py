"""REALTrainer vs GRPOTrainer on the same setups: step time, peak memory, loss traffic.

Every trainer runs the same model, data and fixed rollouts (no generation noise), and the script prints
ratios measured in this run. GRPO is TRL's GRPOTrainer on its default path (its fused LM head with tiles of
4096 tokens, its pi_old forward over every row); REAL is REALTrainer with its defaults.

The tiny model (`--case tiny`; 4 layers, hidden 128, the tiny tokenizer's vocabulary), alternating rounds
in one process:

* for each share of groups that carry signal (a positive and a negative), the step time of REAL
  skipping the rows without signal (`skip_no_signal=True`, the default), of REAL without skipping, and
  of GRPO; with the ratios REAL-skip / GRPO and REAL-skip / REAL-no-skip;
* the share of REAL's step time spent in its pi_old forward (over the rows that train);
* the peak memory REAL / GRPO (the CUDA allocator's peak on a GPU; on CPU, peak resident set size of a
  fresh subprocess per trainer);
* the bytes REAL's loss exchanges per micro-step against gathering token-level log-probs, at the
  paper's shapes.

The real vocabulary (`--case vocab`): a randomly initialised 2-layer Qwen2 with DeepSeek-R1-Distill-Qwen's
vocabulary (151,936 tokens) and hidden size 256 (`vocab_model`), completions of 1,024 tokens, float32, AdamW:

* step time REAL / GRPO at each share of groups with signal, in CPU time of the process (steady on a shared
  machine) and in wall time, one run per trainer and share (groups of 2, 2 sequences per micro-step, 4
  micro-steps per generation batch, 2 per optimizer step, so a pi_old forward is needed);
* peak-memory growth during `train()` REAL / GRPO, each in a fresh subprocess (8 sequences per micro-step,
  2 micro-steps per generation batch, one per optimizer step, so a pi_old forward is needed), with the peak
  inside the optimizer step and the peak outside it.

    python bench/trainer_overhead.py [--case both|tiny|vocab] [--rounds 3] [--steps 4]
        [--shares 1.0 0.75 0.5 0.25] [--vocab_shares 1.0 0.5 0.25]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import torch
from datasets import Dataset
from transformers import PrinterCallback, Qwen2Config, Qwen2ForCausalLM
from trl import GRPOTrainer

from real_trl import REALConfig, REALTrainer
from real_trl.losses import SequenceStats
from real_trl.tiny import build_tiny_model, build_tiny_tokenizer

GROUP_SIZE = 8
PROMPTS = [[{"role": "user", "content": f"Problem {i}: " + "x" * (i % 17)}] for i in range(256)]
METHODS = ("real", "real_noskip", "grpo")


def fixed_rollout(prompts, trainer, completion) -> dict:
    """TRL's `rollout_func` output for `prompts`, the i-th completion being `completion(i)` then EOS."""
    tokenizer = trainer.processing_class
    prompt_ids, completion_ids = [], []
    for i, prompt in enumerate(prompts):
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        prompt_ids.append(tokenizer(text)["input_ids"])
        completion_ids.append([*completion(i), tokenizer.eos_token_id])
    return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None}


def rollout(prompts, trainer):
    """Fixed completions; member j of a group gets a completion of a length with parity j % 2."""

    def completion(i):
        length = 48 + 2 * ((i * 37) % 40) + i % GROUP_SIZE % 2
        return [10 + (i * 7 + t * 13) % 200 for t in range(length)]

    return fixed_rollout(prompts, trainer, completion)


def signal_reward(share: float):
    """In the first `share` of every 4 groups odd-length completions are correct; the other groups are all
    wrong: each generation batch has exactly that share of groups with signal."""

    def reward(completion_ids, **kwargs):
        mixed = [row // GROUP_SIZE % 4 < share * 4 for row in range(len(completion_ids))]
        return [float(m and len(ids) % 2 == 1) for m, ids in zip(mixed, completion_ids, strict=True)]

    reward.__name__ = "signal_reward"
    return reward


def build_trainer(method: str, model, tokenizer, reward, rollout_func, **settings):
    """GRPOTrainer (`method="grpo"`) or REALTrainer (REAL's defaults), on fixed rollouts, untimed extras off."""
    args = REALConfig(
        output_dir=f"/tmp/real-bench-{method}",
        loss_type="grpo" if method == "grpo" else "real",
        report_to=[],
        save_strategy="no",
        use_cpu=not torch.cuda.is_available(),
        bf16=False,
        disable_tqdm=True,
        logging_strategy="no",
        seed=0,
        **settings,
    )
    trainer_class = GRPOTrainer if method == "grpo" else REALTrainer
    trainer = trainer_class(
        model=model,
        reward_funcs=[reward],
        args=args,
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tokenizer,
        rollout_func=rollout_func,
    )
    trainer.remove_callback(PrinterCallback)  # the final train_runtime line would interleave with the table
    return trainer


def build(method: str, steps: int, share: float = 0.5):
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(tokenizer, hidden_size=128, num_layers=4, seed=0)
    return build_trainer(
        method,
        model,
        tokenizer,
        signal_reward(share),
        rollout,
        skip_no_signal=method == "real",
        per_device_train_batch_size=16,
        num_generations=GROUP_SIZE,
        gradient_accumulation_steps=2,
        steps_per_generation=8,  # 4 optimizer steps per generation batch, as in the paper
        max_completion_length=160,
        max_steps=steps,
    )


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


# -- the real vocabulary ---------------------------------------------------------------------------------------

VOCAB = 151_936  # DeepSeek-R1-Distill-Qwen-1.5B / 7B
VOCAB_HIDDEN = 256
COMPLETION_TOKENS = 1024
# (num_generations = per-device micro-batch, steps_per_generation, gradient_accumulation_steps, max_steps)
TIME_LAYOUT = (2, 4, 2, 2)  # 4 groups of 2 per generation batch: shares 1.0 / 0.5 / 0.25 are 4 / 2 / 1 groups
MEMORY_LAYOUT = (8, 2, 1, 2)  # the issue's: 8 sequences of 1,024 tokens per micro-step, 2 micro-steps
TARGETS = {"memory": 0.25, 0.25: 0.35, 1.0: 1.0}  # issue 18: REAL / GRPO at most


def vocab_model(tokenizer) -> Qwen2ForCausalLM:
    """Random Qwen2 with R1-Distill-Qwen's vocabulary, untied embeddings as the 1.5B, 2 layers of hidden 256
    (intermediate 1,472: the 1.5B's 35/6 ratio): 80.5 M parameters, 77.8 M of them the two vocabulary matrices."""
    config = Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=VOCAB_HIDDEN,
        intermediate_size=VOCAB_HIDDEN * 35 // 6 // 64 * 64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    return Qwen2ForCausalLM(config)


def vocab_rollout(prompts, trainer):
    """Completions of exactly COMPLETION_TOKENS tokens; member j of a group ends in token 100 + j % 2."""

    def completion(i):
        body = [10 + (i * 7 + t * 13) % 200 for t in range(COMPLETION_TOKENS - 2)]
        return [*body, 100 + i % trainer.num_generations % 2]

    return fixed_rollout(prompts, trainer, completion)


def vocab_reward(share: float, group_size: int):
    """In the first `share` of every 4 groups, the members ending in token 101 are correct; the others all wrong."""

    def reward(completion_ids, **kwargs):
        return [float(row // group_size % 4 < share * 4 and ids[-2] == 101) for row, ids in enumerate(completion_ids)]

    reward.__name__ = "signal_reward"
    return reward


def build_vocab(method: str, layout: tuple[int, int, int, int], share: float):
    group, steps_per_generation, accumulation, max_steps = layout
    tokenizer = build_tiny_tokenizer()
    return build_trainer(
        method,
        vocab_model(tokenizer),
        tokenizer,
        vocab_reward(share, group),
        vocab_rollout,
        per_device_train_batch_size=group,
        num_generations=group,
        gradient_accumulation_steps=accumulation,
        steps_per_generation=steps_per_generation,
        max_completion_length=COMPLETION_TOKENS,
        max_steps=max_steps,
        optim="adamw_torch",
    )


def vocab_step_time(method: str, share: float) -> dict:
    """CPU and wall seconds per optimizer step, and the rows through the pi_old (no-grad) forward."""
    trainer = build_vocab(method, TIME_LAYOUT, share)
    compute_logps, pi_old_rows = trainer._get_per_token_logps_and_entropies, [0]

    def counted(model, input_ids, *args, **kwargs):
        out = compute_logps(model, input_ids, *args, **kwargs)
        if not torch.is_grad_enabled() and out[0] is not None:
            pi_old_rows[0] += input_ids.size(0)
        return out

    trainer._get_per_token_logps_and_entropies = counted
    cpu, wall = time.process_time(), time.perf_counter()
    trainer.train()
    steps = TIME_LAYOUT[3]
    return {"cpu": (time.process_time() - cpu) / steps, "wall": (time.perf_counter() - wall) / steps,
            "pi_old_rows": pi_old_rows[0]}  # fmt: skip


def _resident_mib(field: str) -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":")) / 1024


def _reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    else:  # the kernel's high-water mark of the resident set (VmHWM) falls back to the current size
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")


def _peak_mib() -> float:
    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else _resident_mib("VmHWM")


def _current_mib() -> float:
    return torch.cuda.memory_allocated() / 2**20 if torch.cuda.is_available() else _resident_mib("VmRSS")


def vocab_peak_growth(method: str) -> dict:
    """Peak memory growth (MiB) during `train()` over the memory in use just before it (resident set on CPU, the
    CUDA allocator on GPU): inside the optimizer steps and outside them. Run in a fresh process per trainer."""
    trainer = build_vocab(method, MEMORY_LAYOUT, share=1.0)
    peaks = {"optimizer_step": 0.0, "elsewhere": 0.0}
    create_optimizer = trainer.create_optimizer

    def instrumented_optimizer(*args, **kwargs):
        optimizer = create_optimizer(*args, **kwargs)
        step = optimizer.step

        def measured_step(*step_args, **step_kwargs):
            peaks["elsewhere"] = max(peaks["elsewhere"], _peak_mib() - before)
            _reset_peak()
            out = step(*step_args, **step_kwargs)
            peaks["optimizer_step"] = max(peaks["optimizer_step"], _peak_mib() - before)
            _reset_peak()
            return out

        optimizer.step = measured_step
        return optimizer

    trainer.create_optimizer = instrumented_optimizer
    before = _current_mib()
    _reset_peak()
    trainer.train()
    peaks["elsewhere"] = max(peaks["elsewhere"], _peak_mib() - before)
    optimizer_state = sum(
        value.numel() * value.element_size()
        for state in trainer.optimizer.state.values()
        for value in state.values()
        if torch.is_tensor(value)
    )
    return {**peaks, "growth": max(peaks.values()), "optimizer_state": optimizer_state / 2**20}


def _in_subprocess(call: str) -> dict:
    code = f"import json, trainer_overhead as b; print(json.dumps({call}))"
    done = subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=Path(__file__).parent, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _against(ratio: float, target: float | None) -> str:
    if target is None:
        return ""
    return f"target <= {target:g}: {'met' if ratio <= target else 'not met'}"


def vocab_tables(shares: list[float]) -> None:
    group, steps, accumulation, _ = TIME_LAYOUT
    parameters = sum(p.numel() for p in vocab_model(build_tiny_tokenizer()).parameters())
    print(
        f"\nreal vocabulary: Qwen2, 2 layers, hidden {VOCAB_HIDDEN}, vocabulary {VOCAB:,} (untied), "
        f"{parameters / 1e6:.1f} M parameters; completions of {COMPLETION_TOKENS:,} tokens; float32; AdamW"
    )
    print(
        f"step time: groups of {group}, {group} sequences per micro-step, {steps} micro-steps per generation batch, "
        f"{accumulation} per optimizer step; seconds per optimizer step, one generation batch per trainer and share"
    )
    print(
        "share with signal | REAL CPU s | GRPO CPU s | REAL/GRPO CPU | REAL wall s | GRPO wall s | REAL/GRPO wall | "
        "pi_old rows REAL/GRPO | against the issue's target (CPU)"
    )
    for share in shares:
        real, grpo = vocab_step_time("real", share), vocab_step_time("grpo", share)
        cpu_ratio = real["cpu"] / grpo["cpu"]
        print(
            f"{share:17.2f} | {real['cpu']:10.1f} | {grpo['cpu']:10.1f} | {cpu_ratio:13.3f} | {real['wall']:11.1f} | "
            f"{grpo['wall']:11.1f} | {real['wall'] / grpo['wall']:14.3f} | "
            f"{real['pi_old_rows']:>10} / {grpo['pi_old_rows']:<10} | {_against(cpu_ratio, TARGETS.get(share))}",
            flush=True,
        )
    group, steps, accumulation, _ = MEMORY_LAYOUT
    print(
        f"peak memory growth during train(): {group} sequences of {COMPLETION_TOKENS:,} tokens per micro-step, "
        f"{steps} micro-steps per generation batch, {accumulation} per optimizer step, every group with signal; "
        f"MiB over the memory in use before train() ({'CUDA allocator' if torch.cuda.is_available() else 'RSS'}), "
        "fresh process per trainer"
    )
    real, grpo = _in_subprocess("b.vocab_peak_growth('real')"), _in_subprocess("b.vocab_peak_growth('grpo')")
    for name, peaks in (("REAL", real), ("GRPO", grpo)):
        print(
            f"  {name}: growth {peaks['growth']:,.0f} MiB (outside the optimizer step {peaks['elsewhere']:,.0f}, "
            f"inside it {peaks['optimizer_step']:,.0f}; AdamW state {peaks['optimizer_state']:,.0f})"
        )
    ratio = real["growth"] / grpo["growth"]
    print(f"  ratio REAL/GRPO {ratio:.3f}  {_against(ratio, TARGETS['memory'])}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=("both", "tiny", "vocab"), default="both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--shares", type=float, nargs="+", default=[1.0, 0.75, 0.5, 0.25])
    parser.add_argument("--vocab_shares", type=float, nargs="+", default=[1.0, 0.5, 0.25])
    args = parser.parse_args()
    threads = f"{torch.get_num_threads()} threads, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
    print(f"device: {torch.cuda.get_device_name() if torch.cuda.is_available() else f'CPU ({threads})'}")
    if args.case in ("both", "tiny"):
        for method in METHODS:  # warm-up
            timed_run(method, 1, 1.0)
        skipping_table(args.shares, args.rounds, args.steps)
        real_mem, grpo_mem = peak_memory_mib("real", args.steps), peak_memory_mib("grpo", args.steps)
        print(
            f"peak memory REAL {real_mem:.0f} MiB  GRPO {grpo_mem:.0f} MiB  ratio REAL/GRPO {real_mem / grpo_mem:.3f}"
        )
        print("loss traffic (paper shapes):", json.dumps(loss_traffic(), indent=1))
    if args.case in ("both", "vocab"):
        vocab_tables(args.vocab_shares)


if __name__ == "__main__":
    main()
