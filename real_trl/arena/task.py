"""The arena's task: arithmetic questions whose reference answer is an integer in `\\boxed{}`.

Pure Python (no torch): the problems, the train / held-out split and the prompt format.
"""

from __future__ import annotations

import random

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


def _distinct_problems(rng: random.Random, count: int) -> list[dict]:
    problems, seen = [], set()
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


def build_splits(num_train: int, num_heldout: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Disjoint train and held-out problems, levels in equal shares, fixed by `seed`.

    The held-out questions are drawn first and never appear in the training split, so held-out
    accuracy measures generalisation to unseen questions (for the small levels, to unseen pairs).
    """
    rng = random.Random(seed)
    heldout = _distinct_problems(rng, num_heldout)
    # Training questions may repeat (the small levels have only ~100 distinct questions).
    train, held = [], {p["question"] for p in heldout}
    while len(train) < num_train:
        level = LEVELS[len(train) % len(LEVELS)]
        question, answer = make_problem(rng, level)
        if question not in held:
            train.append({"question": question, "answer": answer, "level": level})
    return train, heldout


def rl_split(cfg) -> tuple[list[dict], list[dict]]:
    """RL prompts and the held-out problems for an `ArenaConfig`.

    The RL prompts continue the warm start's stream of training problems, so RL mostly sees questions
    the warm start never saw (only the small levels, with ~100 distinct questions each, repeat) and its
    training reward tracks what generalises.
    """
    train, heldout = build_splits(cfg.num_train + cfg.num_rl_train, cfg.num_heldout, cfg.task_seed)
    return train[cfg.num_train :], heldout


def prompt_messages(question: str) -> list[dict]:
    """The conversational prompt TRL sees (a single user turn, as in the paper's setup)."""
    return [{"role": "user", "content": f"{question}="}]


def reference_completion(answer: str) -> str:
    """What a correct completion looks like: the answer in `\\boxed{}` and nothing else."""
    return f"\\boxed{{{answer}}}"
