"""The reward functions: `math_reward` (math-verify), `paper_math_reward` (the official release's rules),
and two format rewards. All take TRL's reward-function arguments and return one score per completion.

A math reward cuts the answer out of each completion here (pure string work, bounded length), answers
pure integers on both sides directly, merges duplicate pairs, and sends the rest to the verifier pool.
Counters (timeouts, worker restarts, unparseable references, missing answers) go to the trainer log
through TRL's `log_metric` hook as `<reward name>/<counter>` (per-batch counts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from real_trl.rewards.extraction import (
    MAX_ANSWER_CHARS,
    THINK_CLOSE,
    completion_text,
    extract_answer,
    extract_paper_answer,
    reference_answers,
)
from real_trl.rewards.pool import verify_all

DEFAULT_TIMEOUT = 3.0  # seconds per completion, hard; real answers verify in milliseconds
METRICS = ("timeouts", "worker_restarts", "unparseable_refs", "no_answer")

_INT_RE = re.compile(r"-?\d{1,40}")


@dataclass
class MathReward:
    """A TRL reward function: 1.0 when the final boxed answer is equivalent to `answer`, else 0.0
    (None when the reference itself can't be parsed), graded by math-verify.

    The answer is the last `\\boxed{...}` (or `\\fbox{...}`, `\\boxed 5`) after the last `</think>`.

    Args:
        require_think: a completion with no `</think>` scores 0 (on for R1-distilled models, whose
            answer follows their reasoning; off for models that don't think in tags).
        timeout: hard per-completion budget in seconds (a soft SIGALRM fires a little earlier).
        batch_timeout: budget for a whole call; None means `timeout * ceil(n / workers) + 10`.
            Completions left when it runs out score 0 and count as timeouts.
        num_workers: verifier processes; None = usable cores / ranks on this node; 0 = in-process.
        max_answer_chars: longest boxed answer that is parsed at all.
    """

    require_think: bool = True
    timeout: float = DEFAULT_TIMEOUT
    batch_timeout: float | None = None
    num_workers: int | None = None
    max_answer_chars: int = MAX_ANSWER_CHARS
    totals: dict = field(default_factory=lambda: dict.fromkeys(METRICS, 0))
    __name__ = "math_reward"  # TRL names the logged reward column after it
    grader = "math_verify"  # the worker's grader

    def extract(self, text) -> str | None:
        """The answer string this reward would grade in `text` (a completion in either form), or None."""
        return extract_answer(text, self.require_think, self.max_answer_chars)

    def __call__(self, completions, answer=None, log_metric=None, **kwargs) -> list[float | None]:
        if answer is None:
            raise ValueError(
                f"{self.__name__} needs the reference answers as an 'answer' dataset column; load the data "
                "with real_trl.data.load_named_dataset or rename your answer column to 'answer'."
            )
        if len(answer) != len(completions):
            raise ValueError(f"{self.__name__} got {len(completions)} completions but {len(answer)} answers")
        counts = dict.fromkeys(METRICS, 0)
        scores, jobs = self._score_locally(completions, answer, counts)
        results = verify_all(
            list(jobs),
            self.grader,
            num_workers=self.num_workers,
            timeout=self.timeout,
            batch_timeout=self.batch_timeout,
            counts=counts,
        )
        for (score, status), indices in zip(results, jobs.values(), strict=True):
            for i in indices:
                scores[i] = score
                counts["timeouts"] += status == "timeout"
                counts["unparseable_refs"] += status == "bad_ref"
        for name, value in counts.items():
            self.totals[name] += value
            if log_metric is not None:
                log_metric(f"{self.__name__}/{name}", float(value))
        return scores

    def _score_locally(self, completions, answer, counts: dict) -> tuple[list, dict]:
        """Scores decided without a verifier, and the (pred, refs) jobs left, each with its completions."""
        scores: list[float | None] = [0.0] * len(completions)
        jobs: dict[tuple[str, tuple[str, ...]], list[int]] = {}  # identical pairs are verified once
        for i, (completion, ref) in enumerate(zip(completions, answer, strict=True)):
            refs = reference_answers(ref)
            if refs is None:
                scores[i] = None
                counts["unparseable_refs"] += 1
                continue
            pred = self.extract(completion)
            if pred is None:
                counts["no_answer"] += 1
            elif _INT_RE.fullmatch(pred) and all(_INT_RE.fullmatch(r) for r in refs):
                scores[i] = float(any(int(pred) == int(r) for r in refs))  # what either grader would say
            else:
                jobs.setdefault((pred, refs), []).append(i)
        return scores, jobs


@dataclass
class PaperMathReward(MathReward):
    """`MathReward` under the official release's rules (the DeepScaleR grader), see `paper_grader`.

    The answer is the last `\\boxed{...}` between the first `</think>` and any next one (`\\fbox{...}` and
    `\\boxed 5` do not count); equivalence is Hendrycks-MATH normalised-string equality or the official
    restricted symbolic check. Same options, pool and budgets as `MathReward`.
    """

    __name__ = "paper_math_reward"
    grader = "paper"

    def extract(self, text) -> str | None:
        """The answer string this reward would grade in `text` (a completion in either form), or None."""
        return extract_paper_answer(text, self.require_think, self.max_answer_chars)


def make_math_reward(require_think: bool = True, **options) -> MathReward:
    """A `math_reward` with other options (see `MathReward`); its `__name__` stays "math_reward"."""
    return MathReward(require_think=require_think, **options)


def make_paper_math_reward(require_think: bool = True, **options) -> PaperMathReward:
    """A `paper_math_reward` with other options (see `MathReward`); its `__name__` stays "paper_math_reward"."""
    return PaperMathReward(require_think=require_think, **options)


math_reward = MathReward()
"""Our default verifier reward (math-verify): `reward_funcs=[math_reward]`; `answer` is the dataset column."""

paper_math_reward = PaperMathReward()
"""The official release's reward rules: `reward_funcs=[paper_math_reward]`."""


def think_then_boxed_reward(completions, **kwargs) -> list[float]:
    """1.0 when a completion closes its reasoning exactly once and then gives a boxed answer.

    The R1 chat template opens `<think>` in the prompt, so the opening tag is optional; a second
    `</think>` or a `<think>` after the closing one fails. Off in the paper's recipes.
    """
    rewards = []
    for completion in completions:
        text = completion_text(completion)
        head, sep, tail = text.partition(THINK_CLOSE)
        ok = bool(sep) and THINK_CLOSE not in tail and "<think>" not in tail and head.count("<think>") <= 1
        rewards.append(1.0 if ok and extract_answer(text) is not None else 0.0)
    return rewards


def digit_reward(completions, **kwargs) -> list[float]:
    """Smoke runs only: 1.0 when a completion contains a digit. A random tiny model writes digits in some
    completions and not in others, so groups carry signal and the REAL loss has a gradient to check."""
    return [float(any(ch.isdigit() for ch in completion_text(c))) for c in completions]
