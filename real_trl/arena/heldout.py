"""Held-out evaluation: greedy accuracy and sampled Pass@1, scored by the project's math reward."""

from __future__ import annotations

import torch

from real_trl.arena.settings import ArenaConfig
from real_trl.arena.task import prompt_messages
from real_trl.rewards import make_math_reward


def arena_reward():
    """The reward of every arena run: `math_reward` without the `</think>` requirement (the tiny model
    answers directly, without thinking)."""
    return make_math_reward(require_think=False)


def prompt_text(tokenizer, question: str) -> str:
    """The prompt of `question` under the tokenizer's chat template, ready for generation."""
    return tokenizer.apply_chat_template(prompt_messages(question), add_generation_prompt=True, tokenize=False)


def _scores(model, tokenizer, prompts, answers, cfg: ArenaConfig, reward_fn, sample: bool, repeats: int):
    batch = tokenizer(prompts * repeats, return_tensors="pt", padding=True, add_special_tokens=False)
    kwargs = {"do_sample": False}
    if sample:
        kwargs = {"do_sample": True, "temperature": cfg.temperature, "top_p": 1.0, "top_k": 0}
    out = model.generate(**batch, max_new_tokens=cfg.max_completion_length, **kwargs)
    texts = tokenizer.batch_decode(out[:, batch["input_ids"].size(1) :], skip_special_tokens=True)
    return [r or 0.0 for r in reward_fn(texts, answers * repeats)]


@torch.no_grad()
def evaluate(model, tokenizer, problems: list[dict], cfg: ArenaConfig, seed: int = 0, reward_fn=None) -> dict:
    """Held-out greedy accuracy and sampled Pass@1 (mean over `eval_samples` samples at the training
    temperature), scored by `arena_reward`; also greedy accuracy per level."""
    reward_fn = reward_fn or arena_reward()
    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"
    prompts = [prompt_text(tokenizer, p["question"]) for p in problems]
    answers = [p["answer"] for p in problems]
    try:
        greedy = _scores(model, tokenizer, prompts, answers, cfg, reward_fn, sample=False, repeats=1)
        # Sampling noise is shared by all methods (same seed) and kept out of the training RNG stream.
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            sampled = _scores(model, tokenizer, prompts, answers, cfg, reward_fn, sample=True, repeats=cfg.eval_samples)
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    by_level = {}
    for problem, score in zip(problems, greedy):
        by_level.setdefault(problem["level"], []).append(score)
    return {
        "greedy": sum(greedy) / len(greedy),
        "sampled": sum(sampled) / len(sampled),
        "greedy_by_level": {level: sum(v) / len(v) for level, v in by_level.items()},
    }
