"""RL runs from the warm start: one method at one learning rate and seed (`run_method`), and the whole
sweep (`run_arena`)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import torch
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from transformers.trainer_callback import PrinterCallback
from transformers.utils import logging as hf_logging

from real_trl import REALConfig, REALTrainer
from real_trl.arena.heldout import HABITS, arena_reward, evaluate
from real_trl.arena.report import choose_learning_rates, summarize
from real_trl.arena.settings import METHODS, ArenaConfig
from real_trl.arena.sft import warm_start
from real_trl.arena.task import prompt_messages, rl_split


@contextlib.contextmanager
def _quiet():
    """No progress bars, warnings or info logs from transformers / TRL: the arena's own bar is the output,
    TRL's per-step dicts go to the JSON, and its warnings are expected here."""
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hf_logging.set_verbosity_error()
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()


_CURVES = ("greedy", "sampled", *HABITS)  # what the held-out evaluation tracks over steps


class HeldOutEvaluation(TrainerCallback):
    """Evaluates on the held-out problems every `eval_every` steps and at the end; `curves` holds the
    scores from step 0 (the warm start's) on."""

    def __init__(self, cfg: ArenaConfig, tokenizer, heldout: list[dict], reward_fn, start: dict, bar):
        self.cfg, self.tokenizer, self.heldout, self.reward_fn, self.bar = cfg, tokenizer, heldout, reward_fn, bar
        self.curves = {"step": [0], **{key: [start[key]] for key in _CURVES}}

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.bar.update(1)
        step = state.global_step
        if step % self.cfg.eval_every == 0 or step == self.cfg.max_steps:
            scores = evaluate(model, self.tokenizer, self.heldout, self.cfg, self.cfg.task_seed, self.reward_fn)
            self.curves["step"].append(step)
            for key in _CURVES:
                self.curves[key].append(scores[key])
            self.bar.set_postfix(heldout_pass1=f"{scores['sampled']:.3f}", greedy=f"{scores['greedy']:.3f}")


def training_args(cfg: ArenaConfig, method: str, learning_rate: float, seed: int, output_dir: str) -> REALConfig:
    """The trainer settings of one run: the method's loss settings on the budget every method shares."""
    group = cfg.num_generations
    return REALConfig(
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


def _series(log_history: list[dict], key: str) -> dict:
    points = [(h["step"], h[key]) for h in log_history if key in h and isinstance(h[key], (int, float))]
    return {"step": [s for s, _ in points], "value": [float(v) for _, v in points]}


def run_method(
    cfg: ArenaConfig,
    method: str,
    learning_rate: float,
    seed: int,
    warm_path: str | Path,
    warm_info: dict | None = None,
    progress: bool = True,
) -> dict:
    """One RL run from the warm start with REALTrainer; returns its curves (held-out evals and train logs).

    `warm_info` holds the warm start's held-out scores (step 0); without it they are measured again.
    """
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose from {', '.join(METHODS)}.")
    torch.set_num_threads(cfg.num_threads)
    train, heldout = rl_split(cfg)
    dataset = Dataset.from_list([{"prompt": prompt_messages(p["question"]), "answer": p["answer"]} for p in train])
    with _quiet():
        model = AutoModelForCausalLM.from_pretrained(warm_path)
        tokenizer = AutoTokenizer.from_pretrained(warm_path)
    reward_fn = arena_reward()
    start = warm_info or evaluate(model, tokenizer, heldout, cfg, cfg.task_seed, reward_fn)
    name = f"{method} lr={learning_rate:g} seed={seed}"
    with tqdm(total=cfg.max_steps, desc=name, disable=not progress, leave=False) as bar:
        evaluation = HeldOutEvaluation(cfg, tokenizer, heldout, reward_fn, start, bar)
        with tempfile.TemporaryDirectory() as output_dir, _quiet():
            trainer = REALTrainer(
                model=model,
                reward_funcs=[reward_fn],
                args=training_args(cfg, method, learning_rate, seed, output_dir),
                train_dataset=dataset,
                processing_class=tokenizer,
                callbacks=[evaluation],
            )
            trainer.remove_callback(PrinterCallback)
            began = time.time()
            trainer.train()
            wall = time.time() - began
    history = trainer.state.log_history
    return {
        "method": method,
        "learning_rate": learning_rate,
        "seed": seed,
        "wall_s": round(wall, 1),
        "eval": evaluation.curves,
        "train": {
            "reward": _series(history, "reward"),
            "entropy": _series(history, "entropy"),
            "groups_with_signal": _series(history, "groups/with_signal"),
        },
    }


def run_arena(cfg: ArenaConfig, cache_dir: str | Path | None = None, progress: bool = True, on_run=None) -> dict:
    """Warm start (cached), then every method x learning rate x seed; returns everything
    `real_trl.arena.report.write_results` needs. `on_run(results_so_far)` is called after each run
    (e.g. to save partial results)."""
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
        "machine": {"cpus": os.cpu_count(), "torch_threads": cfg.num_threads, "date": time.strftime("%Y-%m-%d")},
    }
