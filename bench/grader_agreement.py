"""Agreement of `math_reward` (math-verify) with the official release's rules, on the paper's benchmark answers.

    python bench/grader_agreement.py [--workers N]

For each of the 1,590 references of the six benchmark files shipped in real_trl/benchmarks/, R1-style
completions box the answer in the ways a model writes it: exactly, `\\dfrac` for `\\frac`, `x = ...`,
`5.0` for an integer `5`, wrapped in `\\text{...}`, or another problem's (different) answer.
`paper_math_reward` (our implementation of the official rules) stands in for the official grader; the
table gives, per variant, how often each grader accepts, and how often `math_reward` gives the same
score as the official rules.
"""

from __future__ import annotations

import argparse
import re
import time


def load_references() -> list:
    """The ground truth of every benchmark row (`reward_model.ground_truth`, stored as an object or a string)."""
    import pandas as pd

    from real_trl.data import BENCHMARK_DIR, EVAL_BENCHMARKS, decode

    refs = []
    for name in EVAL_BENCHMARKS:
        for reward_model in pd.read_parquet(BENCHMARK_DIR / f"{name}.parquet")["reward_model"]:
            refs.append(decode(reward_model)["ground_truth"])
    return refs


def shown(ref) -> str:
    """The first acceptable answer as a model would box it: no math delimiters."""
    from real_trl.rewards import reference_answers

    return re.sub(r"(?<!\\)\$", "", reference_answers(ref)[0])


def variants(refs: list) -> dict[str, list[tuple[int, str]]]:
    """Variant name -> [(reference index, boxed answer)]; a variant only where it changes the answer."""
    answers = [shown(ref) for ref in refs]

    def same(a: str, b: str) -> bool:  # equal, or one is the other as an assignment ("x=5" and "5")
        a, b = a.replace(" ", ""), b.replace(" ", "")
        return a == b or a.split("=")[-1] == b or b.split("=")[-1] == a

    def other(i: int) -> str:  # the next reference that differs
        j = (i + 1) % len(answers)
        while same(answers[j], answers[i]):
            j = (j + 1) % len(answers)
        return answers[j]

    return {
        "exact": list(enumerate(answers)),
        r"\dfrac": [(i, a.replace(r"\frac", r"\dfrac")) for i, a in enumerate(answers) if r"\frac" in a],
        "x = ...": [(i, f"x = {a}") for i, a in enumerate(answers) if "=" not in a],
        "5.0 for 5": [(i, f"{a}.0") for i, a in enumerate(answers) if re.fullmatch(r"-?\d+", a)],
        r"\text{...}": [(i, rf"\text{{{a}}}") for i, a in enumerate(answers)],
        "another answer": [(i, other(i)) for i in range(len(answers))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=None, help="verifier processes (default: usable cores)")
    args = parser.parse_args()

    from real_trl.rewards import make_math_reward, make_paper_math_reward

    refs = load_references()
    graders = {
        "official rules": make_paper_math_reward(num_workers=args.workers),
        "math_reward": make_math_reward(num_workers=args.workers),
    }
    print(f"{len(refs)} references; paper_math_reward stands in for the official rules\n")
    print("| variant | n | official rules accept | math_reward accepts | math_reward agrees with official |")
    print("| --- | --- | --- | --- | --- |")
    start = time.perf_counter()
    for name, pairs in variants(refs).items():
        completions = [f"<think>\nreasoning\n</think>\n\nThe answer is $\\boxed{{{a}}}$." for _, a in pairs]
        answers = [refs[i] for i, _ in pairs]
        official, ours = (grader(completions, answers) for grader in graders.values())
        agree = sum((a or 0.0) == (b or 0.0) for a, b in zip(official, ours, strict=True))
        n = len(pairs)
        print(
            f"| {name} | {n} | {sum(s == 1.0 for s in official) / n:.1%} | {sum(s == 1.0 for s in ours) / n:.1%} "
            f"| {agree / n:.1%} |",
            flush=True,
        )
    timeouts = {name: grader.totals["timeouts"] for name, grader in graders.items()}
    print(f"\n{time.perf_counter() - start:.0f} s; timeouts: {timeouts}")


if __name__ == "__main__":
    main()
