"""Held-out evaluation: greedy accuracy, sampled Pass@1 and the warm start's two habits, scored by the
project's math reward."""

from __future__ import annotations

import torch

from real_trl.arena.settings import ArenaConfig
from real_trl.arena.task import prompt_messages
from real_trl.rewards import extract_answer, make_math_reward

# The habits the warm start is taught on purpose (`real_trl.arena.sft.warm_start_target`).
HABITS = ("unboxed", "off_by_one")


def arena_reward():
    """The reward of every arena run: `math_reward` without the `</think>` requirement (the tiny model
    answers directly, without thinking)."""
    return make_math_reward(require_think=False)


def prompt_text(tokenizer, question: str) -> str:
    """The prompt of `question` under the tokenizer's chat template, ready for generation."""
    return tokenizer.apply_chat_template(prompt_messages(question), add_generation_prompt=True, tokenize=False)


def habit_shares(texts: list[str], answers: list[str]) -> dict[str, float]:
    """The share of completions with each warm-start habit: no `\\boxed{}` answer at all, or the
    reference plus one in the box."""
    boxed = [extract_answer(text, require_think=False) for text in texts]
    off_by_one = [box == str(int(answer) + 1) for box, answer in zip(boxed, answers, strict=True)]
    return {"unboxed": boxed.count(None) / len(texts), "off_by_one": sum(off_by_one) / len(texts)}


def _generate(model, tokenizer, prompts, cfg: ArenaConfig, sample: bool, repeats: int) -> list[str]:
    batch = tokenizer(prompts * repeats, return_tensors="pt", padding=True, add_special_tokens=False)
    kwargs = {"do_sample": False}
    if sample:
        kwargs = {"do_sample": True, "temperature": cfg.temperature, "top_p": 1.0, "top_k": 0}
    out = model.generate(**batch, max_new_tokens=cfg.max_completion_length, **kwargs)
    return tokenizer.batch_decode(out[:, batch["input_ids"].size(1) :], skip_special_tokens=True)


@torch.no_grad()
def evaluate(model, tokenizer, problems: list[dict], cfg: ArenaConfig, seed: int = 0, reward_fn=None) -> dict:
    """Held-out greedy accuracy and sampled Pass@1 (mean over `eval_samples` samples at the training
    temperature), scored by `arena_reward`; greedy accuracy per level; and the share of sampled
    completions with each warm-start habit (`habit_shares`)."""
    reward_fn = reward_fn or arena_reward()
    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"
    prompts = [prompt_text(tokenizer, p["question"]) for p in problems]
    answers = [p["answer"] for p in problems]
    try:
        greedy_texts = _generate(model, tokenizer, prompts, cfg, sample=False, repeats=1)
        # Sampling noise is shared by all methods (same seed) and kept out of the training RNG stream.
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            sampled_texts = _generate(model, tokenizer, prompts, cfg, sample=True, repeats=cfg.eval_samples)
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    greedy = [score or 0.0 for score in reward_fn(greedy_texts, answers)]
    sampled_answers = answers * cfg.eval_samples
    sampled = [score or 0.0 for score in reward_fn(sampled_texts, sampled_answers)]
    by_level = {}
    for problem, score in zip(problems, greedy, strict=True):
        by_level.setdefault(problem["level"], []).append(score)
    return {
        "greedy": sum(greedy) / len(greedy),
        "sampled": sum(sampled) / len(sampled),
        "greedy_by_level": {level: sum(v) / len(v) for level, v in by_level.items()},
        **habit_shares(sampled_texts, sampled_answers),
    }
