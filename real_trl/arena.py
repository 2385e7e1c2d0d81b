"""A CPU arena in which REAL and its baselines train a tiny model on a verifiable arithmetic task.

The pieces, in the order a run uses them:

* a synthetic task: arithmetic problems of mixed difficulty whose reference answer goes in
  `\\boxed{}`, with a fixed held-out split (`build_splits`);
* a tiny Qwen2 model (`real_trl.tiny`) warm-started by a short supervised stage so that held-out
  accuracy starts between roughly 15% and 50% (`warm_start`, cached on disk);
* RL with `REALTrainer` and `real_trl.rewards.math_reward` for each loss type under the same budget
  (`run_method`), with held-out greedy and sampled Pass@1 measured every few steps;
* a markdown table, a JSON file with every curve and a PNG figure (`write_results`).

Nothing here is tuned per method: every loss type gets the same prompts, group size, steps and
learning-rate sweep.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

# --------------------------------------------------------------------------------------------------
# The task
# --------------------------------------------------------------------------------------------------

# Difficulty levels. One level alone would give groups that are all solved or all failed; mixing
# them gives the spread of pass rates RL learns from.
LEVELS = ("add1", "add2", "mul1", "add3", "sub2")


def make_problem(rng: random.Random, level: str) -> tuple[str, str]:
    """One problem of `level` as (question, answer); the answer is an integer written in decimal."""
    if level == "add1":  # 7+5
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        return f"{a}+{b}", str(a + b)
    if level == "add2":  # 47+8
        a, b = rng.randint(10, 99), rng.randint(0, 9)
        return f"{a}+{b}", str(a + b)
    if level == "mul1":  # 6*7
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        return f"{a}*{b}", str(a * b)
    if level == "add3":  # 3+8+6
        a, b, c = (rng.randint(0, 9) for _ in range(3))
        return f"{a}+{b}+{c}", str(a + b + c)
    if level == "sub2":  # 63-27 (may be negative)
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        return f"{a}-{b}", str(a - b)
    raise ValueError(f"Unknown level {level!r}; choose from {', '.join(LEVELS)}.")


def build_splits(num_train: int, num_heldout: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Disjoint train and held-out problems, levels in equal shares, fixed by `seed`.

    The held-out questions are drawn first and never appear in the training split, so held-out
    accuracy measures generalisation to unseen questions (for the small levels, to unseen pairs).
    """
    rng = random.Random(seed)

    def draw(count: int, exclude: set[str]) -> list[dict]:
        problems, seen = [], set(exclude)
        attempts = 0
        while len(problems) < count:
            level = LEVELS[len(problems) % len(LEVELS)]
            question, answer = make_problem(rng, level)
            attempts += 1
            if attempts > 100 * count:
                raise ValueError(f"Cannot draw {count} distinct problems; ask for fewer.")
            if question in seen:
                continue
            seen.add(question)
            problems.append({"question": question, "answer": answer, "level": level})
        return problems

    heldout = draw(num_heldout, set())
    # Training questions may repeat (the small levels have only ~100 distinct questions).
    train, held = [], {p["question"] for p in heldout}
    while len(train) < num_train:
        level = LEVELS[len(train) % len(LEVELS)]
        question, answer = make_problem(rng, level)
        if question not in held:
            train.append({"question": question, "answer": answer, "level": level})
    return train, heldout


def rl_split(cfg) -> tuple[list[dict], list[dict]]:
    """RL prompts and the held-out problems. The RL prompts continue the warm start's stream of training
    problems, so RL mostly sees questions the warm start never saw (only the small levels, with ~100
    distinct questions each, repeat) and its training reward tracks what generalises."""
    train, heldout = build_splits(cfg.num_train + cfg.num_rl_train, cfg.num_heldout, cfg.task_seed)
    return train[cfg.num_train :], heldout


def prompt_messages(question: str) -> list[dict]:
    """The conversational prompt TRL sees (a single user turn, as in the paper's setup)."""
    return [{"role": "user", "content": f"{question}="}]


def reference_completion(answer: str) -> str:
    """What a correct completion looks like: the answer in `\\boxed{}` and nothing else."""
    return f"\\boxed{{{answer}}}"


# --------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------

# Every method runs through REALTrainer; TRL's losses fall through to GRPOTrainer unchanged. The
# baselines take the clip / KL settings of their recipes in recipes/ (the paper's, DESIGN.md section 2).
METHODS: dict[str, dict] = {
    "real": {"loss_type": "real"},
    "bce": {"loss_type": "bce"},
    "real_product": {"loss_type": "real_product"},
    "grpo": {"loss_type": "grpo", "epsilon": 0.2, "beta": 0.001},
    "dapo": {"loss_type": "dapo", "epsilon": 0.2, "epsilon_high": 0.28},
    "gspo": {"loss_type": "grpo", "importance_sampling_level": "sequence", "epsilon": 3e-4, "epsilon_high": 4e-4},
}


@dataclass
class ArenaConfig:
    """Everything a run depends on. The warm start is cached under a hash of the task, model and SFT fields."""

    # task
    task_seed: int = 0
    num_train: int = 4000  # supervised warm-start problems
    num_rl_train: int = 20000  # RL prompts, drawn after the warm-start ones (mostly questions SFT never saw)
    num_heldout: int = 250  # 50 per level
    # model (real_trl.tiny)
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    model_seed: int = 0
    # supervised warm start: tuned so held-out greedy accuracy lands near 30%
    sft_steps: int = 500
    sft_batch_size: int = 64
    sft_lr: float = 2e-3
    # imperfect habits the warm start learns on purpose (see `warm_start_target`)
    sft_unboxed: float = 0.3
    sft_off_by_one: float = 0.2
    # RL, identical for every method
    methods: tuple[str, ...] = tuple(METHODS)
    seeds: tuple[int, ...] = (0, 1, 2)
    learning_rates: tuple[float, ...] = (3e-5, 1e-4)
    max_steps: int = 200
    prompts_per_step: int = 8
    num_generations: int = 8
    steps_per_generation: int = 4  # optimizer steps per generation batch, as in the paper
    temperature: float = 1.0
    max_completion_length: int = 12  # "\boxed{-12}" plus end of turn is 11 tokens
    tau: float = 0.5
    # evaluation
    eval_every: int = 25
    eval_samples: int = 4  # sampled completions per held-out problem for sampled Pass@1
    threshold_gain: float = 0.05  # "steps to threshold" = first eval with sampled Pass@1 >= start + this
    num_threads: int = 1  # one thread per run: steadier than two on a shared 2-core machine

    def cache_key(self) -> str:
        fields = ("task_seed", "num_train", "num_heldout", "hidden_size", "num_layers", "num_heads", "model_seed",
                  "sft_steps", "sft_batch_size", "sft_lr", "sft_unboxed", "sft_off_by_one")
        payload = json.dumps({"version": 1, **{f: getattr(self, f) for f in fields}}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def demo_config(**overrides) -> ArenaConfig:
    """The `make demo` run: REAL alone, one seed, one learning rate."""
    return replace(ArenaConfig(methods=("real",), seeds=(0,), learning_rates=(3e-5,)), **overrides)


def default_cache_dir() -> Path:
    return Path(os.environ.get("REAL_TRL_CACHE", Path.home() / ".cache" / "real-trl")) / "arena"


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------


def _reward_fn():
    from real_trl.rewards import make_math_reward

    return make_math_reward(require_think=False)  # the tiny model answers directly, without thinking


def prompt_text(tokenizer, question: str) -> str:
    return tokenizer.apply_chat_template(prompt_messages(question), add_generation_prompt=True, tokenize=False)


@torch.no_grad()
def evaluate(model, tokenizer, problems: list[dict], cfg: ArenaConfig, seed: int = 0, reward_fn=None) -> dict:
    """Held-out greedy accuracy and sampled Pass@1 (mean over `eval_samples` samples at the training
    temperature), scored by math_reward; also greedy accuracy per level."""
    reward_fn = reward_fn or _reward_fn()
    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"
    prompts = [prompt_text(tokenizer, p["question"]) for p in problems]
    answers = [p["answer"] for p in problems]

    def generate(sample: bool, repeats: int) -> list[float]:
        batch = tokenizer(prompts * repeats, return_tensors="pt", padding=True, add_special_tokens=False)
        kwargs = {"do_sample": False}
        if sample:
            kwargs = {"do_sample": True, "temperature": cfg.temperature, "top_p": 1.0, "top_k": 0}
        out = model.generate(**batch, max_new_tokens=cfg.max_completion_length, **kwargs)
        texts = tokenizer.batch_decode(out[:, batch["input_ids"].size(1) :], skip_special_tokens=True)
        return [r or 0.0 for r in reward_fn(texts, answers * repeats)]

    try:
        greedy = generate(False, 1)
        # Sampling noise is shared by all methods (same seed) and kept out of the training RNG stream.
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            sampled = generate(True, cfg.eval_samples)
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    by_level = {}
    for p, r in zip(problems, greedy):
        by_level.setdefault(p["level"], []).append(r)
    return {
        "greedy": sum(greedy) / len(greedy),
        "sampled": sum(sampled) / len(sampled),
        "greedy_by_level": {k: sum(v) / len(v) for k, v in by_level.items()},
    }


# --------------------------------------------------------------------------------------------------
# Supervised warm start (cached)
# --------------------------------------------------------------------------------------------------


def warm_start_target(answer: str, rng: random.Random, cfg: "ArenaConfig") -> str:
    """The supervised target for one problem: usually the reference completion, but with probability
    `sft_unboxed` the bare answer (no \\boxed, so the verifier finds no answer) and with probability
    `sft_off_by_one` the answer plus one. These habits do not depend on the question, so a policy that
    drops them improves on unseen questions too: that is what RL from the 0/1 verifier must find."""
    draw = rng.random()
    if draw < cfg.sft_unboxed:
        return answer
    if draw < cfg.sft_unboxed + cfg.sft_off_by_one:
        return reference_completion(str(int(answer) + 1))
    return reference_completion(answer)


def _sft_batch(tokenizer, problems: list[dict], rng: random.Random, cfg: "ArenaConfig"):
    rows = []
    for p in problems:
        prompt = tokenizer(prompt_text(tokenizer, p["question"]), add_special_tokens=False)["input_ids"]
        target_text = warm_start_target(p["answer"], rng, cfg) + tokenizer.eos_token
        target = tokenizer(target_text, add_special_tokens=False)["input_ids"]
        rows.append((prompt, target))
    width = max(len(a) + len(b) for a, b in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)  # loss on the completion only
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (prompt, target) in enumerate(rows):
        n = len(prompt) + len(target)
        ids[i, :n] = torch.tensor(prompt + target)
        mask[i, :n] = 1
        labels[i, len(prompt) : n] = torch.tensor(target)
    return ids, mask, labels


def warm_start(cfg: ArenaConfig, cache_dir: str | Path | None = None, progress: bool = True) -> tuple[Path, dict]:
    """Train (or load from the cache) the supervised warm start; returns its directory and held-out scores.

    Plain next-token cross-entropy on the reference completions of the training split, AdamW with a
    short warm-up and cosine decay. Cached under `cache_dir/warm-<hash of the settings>`, so changing
    any task, model or SFT field trains a new one and later runs skip it.
    """
    from real_trl.tiny import build_tiny_model, build_tiny_tokenizer

    path = Path(cache_dir or default_cache_dir()) / f"warm-{cfg.cache_key()}"
    info_file = path / "warm_start.json"
    if info_file.exists():
        return path, json.loads(info_file.read_text())

    torch.set_num_threads(cfg.num_threads)
    train, heldout = build_splits(cfg.num_train, cfg.num_heldout, cfg.task_seed)
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(
        tokenizer, hidden_size=cfg.hidden_size, num_layers=cfg.num_layers, num_heads=cfg.num_heads, seed=cfg.model_seed
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.sft_lr, weight_decay=0.0)
    warmup = max(1, cfg.sft_steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.45 * (1 + math.cos(math.pi * s / cfg.sft_steps))),
    )
    rng = random.Random(cfg.model_seed)
    start = time.time()
    model.train()
    bar = tqdm(range(cfg.sft_steps), desc="warm start (SFT)", disable=not progress)
    for _ in bar:
        ids, mask, labels = _sft_batch(tokenizer, rng.sample(train, cfg.sft_batch_size), rng, cfg)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    info = {"settings_key": cfg.cache_key(), "sft_wall_s": round(time.time() - start, 1)}
    info.update(evaluate(model, tokenizer, heldout, cfg, seed=cfg.task_seed))

    # Write to a scratch directory first: an interrupted run never leaves a half-written cache entry.
    scratch = path.with_name(path.name + f".tmp{os.getpid()}")
    model.save_pretrained(scratch)
    tokenizer.save_pretrained(scratch)
    (scratch / "warm_start.json").write_text(json.dumps(info, indent=2))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        scratch.rename(path)
    except OSError:  # another process cached the same settings meanwhile: keep theirs
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
        info = json.loads(info_file.read_text())
    return path, info


# --------------------------------------------------------------------------------------------------
# RL runs
# --------------------------------------------------------------------------------------------------


def _series(log_history: list[dict], key: str) -> dict:
    points = [(h["step"], h[key]) for h in log_history if key in h and isinstance(h[key], (int, float))]
    return {"step": [s for s, _ in points], "value": [float(v) for _, v in points]}


@contextlib.contextmanager
def _quiet_loading():
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()


def run_method(
    cfg: ArenaConfig,
    method: str,
    learning_rate: float,
    seed: int,
    warm_path: str | Path,
    warm_info: dict | None = None,
    progress: bool = True,
) -> dict:
    """One RL run from the warm start with REALTrainer; returns its curves (held-out evals and train logs)."""
    import tempfile
    import warnings

    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from transformers.utils import logging as hf_logging

    from real_trl import REALConfig, REALTrainer

    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose from {', '.join(METHODS)}.")
    torch.set_num_threads(cfg.num_threads)
    train, heldout = rl_split(cfg)
    dataset = Dataset.from_list([{"prompt": prompt_messages(p["question"]), "answer": p["answer"]} for p in train])
    with _quiet_loading():
        model = AutoModelForCausalLM.from_pretrained(warm_path)
        tokenizer = AutoTokenizer.from_pretrained(warm_path)
    reward_fn = _reward_fn()
    start_eval = warm_info or evaluate(model, tokenizer, heldout, cfg, cfg.task_seed, reward_fn)
    evals = {"step": [0], "greedy": [start_eval["greedy"]], "sampled": [start_eval["sampled"]]}
    name = f"{method} lr={learning_rate:g} seed={seed}"
    bar = tqdm(total=cfg.max_steps, desc=name, disable=not progress, leave=False)

    class ArenaCallback(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            bar.update(1)
            step = state.global_step
            if step % cfg.eval_every == 0 or step == cfg.max_steps:
                scores = evaluate(model, tokenizer, heldout, cfg, cfg.task_seed, reward_fn)
                evals["step"].append(step)
                evals["greedy"].append(scores["greedy"])
                evals["sampled"].append(scores["sampled"])
                bar.set_postfix(heldout_pass1=f"{scores['sampled']:.3f}", greedy=f"{scores['greedy']:.3f}")

    group = cfg.num_generations
    verbosity = hf_logging.get_verbosity()
    with tempfile.TemporaryDirectory() as output_dir, warnings.catch_warnings(), _quiet_loading():
        warnings.simplefilter("ignore")
        args = REALConfig(
            output_dir=output_dir,
            **METHODS[method],
            tau=cfg.tau,
            num_generations=group,
            per_device_train_batch_size=cfg.prompts_per_step * group,
            gradient_accumulation_steps=1,
            steps_per_generation=cfg.steps_per_generation,
            num_iterations=1,
            max_steps=cfg.max_steps,
            learning_rate=learning_rate,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=0.01,
            max_grad_norm=1.0,
            temperature=cfg.temperature,
            top_p=1.0,
            max_completion_length=cfg.max_completion_length,
            use_cpu=True,
            bf16=False,
            seed=seed,
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
        )
        # The progress bar is the output: TRL's per-step dicts go to the JSON, its warnings are expected here.
        hf_logging.set_verbosity_error()
        try:
            trainer = REALTrainer(
                model=model,
                reward_funcs=[reward_fn],
                args=args,
                train_dataset=dataset,
                processing_class=tokenizer,
                callbacks=[ArenaCallback()],
            )
            trainer.remove_callback(PrinterCallback)
            start = time.time()
            trainer.train()
            wall = time.time() - start
        finally:
            hf_logging.set_verbosity(verbosity)
            bar.close()
    history = trainer.state.log_history
    return {
        "method": method,
        "learning_rate": learning_rate,
        "seed": seed,
        "wall_s": round(wall, 1),
        "eval": evals,
        "train": {
            "reward": _series(history, "reward"),
            "entropy": _series(history, "entropy"),
            "groups_with_signal": _series(history, "groups/with_signal"),
        },
    }


# --------------------------------------------------------------------------------------------------
# The arena and its outputs
# --------------------------------------------------------------------------------------------------


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _tail_mean(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    k = max(1, int(round(len(values) * fraction)))
    return sum(values[-k:]) / k


def summarize(runs: list[dict], threshold: float) -> list[dict]:
    """One row per (method, learning rate): final held-out scores over seeds, steps to threshold, end entropy."""
    rows = []
    keys = sorted({(r["method"], r["learning_rate"]) for r in runs}, key=lambda k: (list(METHODS).index(k[0]), k[1]))
    for method, lr in keys:
        group = [r for r in runs if r["method"] == method and r["learning_rate"] == lr]
        reached = []
        for r in group:
            hits = [s for s, v in zip(r["eval"]["step"], r["eval"]["sampled"]) if v >= threshold and s > 0]
            if hits:
                reached.append(hits[0])
        sampled = _mean_std([r["eval"]["sampled"][-1] for r in group])
        greedy = _mean_std([r["eval"]["greedy"][-1] for r in group])
        rows.append(
            {
                "method": method,
                "learning_rate": lr,
                "seeds": len(group),
                "sampled_mean": sampled[0],
                "sampled_std": sampled[1],
                "greedy_mean": greedy[0],
                "greedy_std": greedy[1],
                "steps_to_threshold": sum(reached) / len(reached) if reached else None,
                "seeds_reaching_threshold": len(reached),
                # "end" = the last 10% of logged steps (entropy) / generation batches (reward)
                "entropy_end": sum(_tail_mean(r["train"]["entropy"]["value"], 0.1) for r in group) / len(group),
                "train_reward_end": sum(_tail_mean(r["train"]["reward"]["value"], 0.25) for r in group) / len(group),
                "wall_s": sum(r["wall_s"] for r in group),
            }
        )
    return rows


def choose_learning_rates(summary: list[dict]) -> dict[str, float]:
    """Per method, the learning rate with the highest final *training* reward (held-out data never picks)."""
    best: dict[str, dict] = {}
    for row in summary:
        if row["method"] not in best or row["train_reward_end"] > best[row["method"]]["train_reward_end"]:
            best[row["method"]] = row
    return {m: row["learning_rate"] for m, row in best.items()}


def merge_results(parts: list[dict]) -> dict:
    """One result from arena runs made in separate processes with the same settings apart from methods,
    seeds and learning rates (e.g. two halves run side by side); wall time is the longest part's."""
    first = parts[0]
    runs = [run for part in parts for run in part["runs"]]
    for part in parts[1:]:
        if part["warm_start"] != first["warm_start"]:
            raise ValueError("Cannot merge arena results from different warm starts; rerun with the same settings.")
    config = dict(first["config"])
    for key in ("methods", "seeds", "learning_rates"):
        values = {v for part in parts for v in part["config"][key]}
        config[key] = sorted(values, key=list(METHODS).index) if key == "methods" else sorted(values)
    summary = summarize(runs, first["threshold"])
    return {
        **first,
        "config": config,
        "chosen_learning_rates": choose_learning_rates(summary),
        "summary": summary,
        "runs": runs,
        "wall_s": max(part["wall_s"] for part in parts),
    }


def run_arena(cfg: ArenaConfig, cache_dir: str | Path | None = None, progress: bool = True, on_run=None) -> dict:
    """Warm start (cached), then every method x learning rate x seed; returns everything `write_results`
    needs. `on_run(results_so_far)` is called after each run (e.g. to save partial results)."""
    start = time.time()
    warm_path, warm_info = warm_start(cfg, cache_dir, progress)
    runs = []
    plan = [(m, lr, s) for m in cfg.methods for lr in cfg.learning_rates for s in cfg.seeds]
    outer = tqdm(plan, desc="arena runs", disable=not progress or len(plan) == 1)
    for method, lr, seed in outer:
        outer.set_postfix(method=method, lr=f"{lr:g}", seed=seed)
        runs.append(run_method(cfg, method, lr, seed, warm_path, warm_info, progress))
        if on_run is not None:
            on_run(_collect(cfg, warm_info, runs, start))
    return _collect(cfg, warm_info, runs, start)


def _collect(cfg: ArenaConfig, warm_info: dict, runs: list[dict], start: float) -> dict:
    threshold = round(warm_info["sampled"] + cfg.threshold_gain, 4)
    summary = summarize(runs, threshold)
    return {
        "config": asdict(cfg),
        "warm_start": warm_info,
        "threshold": threshold,
        "chosen_learning_rates": choose_learning_rates(summary),
        "summary": summary,
        "runs": runs,
        "wall_s": round(time.time() - start, 1),
        "machine": {"cpus": os.cpu_count(), "torch_threads": cfg.num_threads},
    }


def _fmt(mean: float, std: float, seeds: int) -> str:
    return f"{mean:.3f} ± {std:.3f}" if seeds > 1 else f"{mean:.3f}"


def markdown_table(results: dict) -> str:
    cfg, warm, threshold = results["config"], results["warm_start"], results["threshold"]
    chosen = results["chosen_learning_rates"]
    header = (
        f"| method | lr | held-out Pass@1 (sampled, T={cfg['temperature']:g}) | held-out greedy | "
        f"steps to Pass@1 ≥ {threshold:.3f} (seeds) | entropy (end) | train reward (end) |\n"
        "| --- | --- | --- | --- | --- | --- | --- |\n"
    )
    warm_row = f"| warm start (SFT) | – | {warm['sampled']:.3f} | {warm['greedy']:.3f} | – | – | – |\n"

    def row(r: dict) -> str:
        steps = "not reached" if r["steps_to_threshold"] is None else f"{r['steps_to_threshold']:.0f}"
        return (
            f"| {r['method']} | {r['learning_rate']:g} | {_fmt(r['sampled_mean'], r['sampled_std'], r['seeds'])} | "
            f"{_fmt(r['greedy_mean'], r['greedy_std'], r['seeds'])} | "
            f"{steps} ({r['seeds_reaching_threshold']}/{r['seeds']}) | "
            f"{r['entropy_end']:.3f} | {r['train_reward_end']:.3f} |\n"
        )

    best = [r for r in results["summary"] if chosen.get(r["method"]) == r["learning_rate"]]
    seeds = len(cfg["seeds"])
    text = (
        f"Held-out Pass@1 after {cfg['max_steps']} RL steps on {cfg['num_heldout']} unseen problems "
        f"({'mean ± std over ' + str(seeds) + ' seeds' if seeds > 1 else 'one seed'}; "
        f"{cfg['prompts_per_step']} prompts x {cfg['num_generations']} completions per step; "
        "learning rate chosen per method by final training reward).\n\n" + header + warm_row + "".join(map(row, best))
    )
    if len(cfg["learning_rates"]) > 1:
        text += "\nEvery learning rate of the sweep:\n\n" + header + "".join(map(row, results["summary"]))
    text += f"\nWall time: {results['wall_s'] / 60:.1f} min on {results['machine']['cpus']} CPU cores.\n"
    return text


def plot_curves(results: dict, path: str | Path) -> Path:
    """Held-out sampled / greedy Pass@1, entropy and training reward over steps (mean ± std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = results["chosen_learning_rates"]
    panels = [
        ("held-out Pass@1 (sampled)", lambda r: (r["eval"]["step"], r["eval"]["sampled"])),
        ("held-out greedy accuracy", lambda r: (r["eval"]["step"], r["eval"]["greedy"])),
        ("entropy (train)", lambda r: (r["train"]["entropy"]["step"], _smooth(r["train"]["entropy"]["value"], 8))),
        ("reward (train)", lambda r: (r["train"]["reward"]["step"], _smooth(r["train"]["reward"]["value"], 3))),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for ax, (title, get) in zip(axes.flat, panels):
        for method, lr in chosen.items():
            group = [r for r in results["runs"] if r["method"] == method and r["learning_rate"] == lr]
            series = [get(r) for r in group]
            length = min(len(s[1]) for s in series)
            steps = series[0][0][:length]
            stats = [_mean_std([s[1][i] for s in series]) for i in range(length)]
            mean = [m for m, _ in stats]
            ax.plot(steps, mean, label=f"{method} (lr {lr:g})", linewidth=2 if method == "real" else 1.3)
            if len(group) > 1:
                ax.fill_between(steps, [m - s for m, s in stats], [m + s for m, s in stats], alpha=0.15)
        ax.set_title(title)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    axes[0, 0].axhline(results["threshold"], color="gray", linestyle=":", linewidth=1)
    axes[0, 0].legend(fontsize=8)
    seeds = len(results["config"]["seeds"])
    spread = f"{seeds} seeds, mean ± std" if seeds > 1 else "one seed"
    gain = results["config"]["threshold_gain"]
    fig.suptitle(f"Tiny-model arithmetic arena ({spread}; dotted line: warm start + {gain:g})")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _smooth(values: list[float], window: int) -> list[float]:
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1) : i + 1]
        out.append(sum(chunk) / len(chunk))
    return out


def write_results(results: dict, output_dir: str | Path) -> dict[str, Path]:
    """`arena.md` (table), `arena.json` (settings, summary and every curve) and `arena.png` (figure)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"table": output_dir / "arena.md", "json": output_dir / "arena.json", "figure": output_dir / "arena.png"}
    paths["table"].write_text(markdown_table(results))
    paths["json"].write_text(json.dumps(results, indent=1))
    plot_curves(results, paths["figure"])
    return paths
