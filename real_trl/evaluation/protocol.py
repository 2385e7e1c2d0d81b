"""What makes two evaluations comparable, and the metrics computed from scored samples (pure: no I/O)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

# --grader choice -> the reward function (real_trl.rewards registry name) that scores the samples.
GRADERS = {"math_verify": "math_reward", "paper": "paper_math_reward"}
DEFAULT_GRADER = "math_verify"
PAPER_GRADER = "paper"  # the official release grades with the DeepScaleR rules, which paper_math_reward follows


@dataclass(frozen=True)
class Protocol:
    """How samples are drawn. The defaults are the paper's (docs/method.md)."""

    n: int = 16
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 8192

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"n (samples per problem) must be >= 1, got {self.n}.")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}.")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}.")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}.")

    def to_dict(self) -> dict:
        """The protocol as the plain dict stored in every output file."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Protocol:
        """The protocol stored in an output file (other keys ignored)."""
        return cls(**{key: data[key] for key in PROTOCOL_KEYS})

    def describe(self) -> str:
        """One line, `n=16, temperature=0.6, ...`, for messages and table footers."""
        return ", ".join(f"{key}={value}" for key, value in self.to_dict().items())


PROTOCOL_KEYS = tuple(field.name for field in fields(Protocol))
PAPER_PROTOCOL = Protocol()


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k).

    Written as 1 - prod_{i=n-c+1..n} (1 - k/i), which never forms the (huge) binomials.
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def pass_at_k_values(n: int) -> list[int]:
    """The k reported for n samples: powers of two up to n, and n itself."""
    ks = [2**i for i in range(int(math.log2(n)) + 1)]
    return ks if ks[-1] == n else [*ks, n]


def benchmark_metrics(rows: list[dict], n: int) -> dict:
    """Metrics of one benchmark from its sample rows (each with problem_index, score, num_tokens, truncated).

    Pass@1 is the mean score over all samples (the paper's definition); pass@k is the unbiased
    estimator averaged over problems. Every problem must have exactly n samples.
    """
    by_problem: dict[int, list[dict]] = {}
    for row in rows:
        by_problem.setdefault(row["problem_index"], []).append(row)
    wrong = {p: len(r) for p, r in by_problem.items() if len(r) != n}
    if not by_problem or wrong:
        raise ValueError(f"every problem needs {n} samples; got {len(by_problem)} problems, counts off for {wrong}")
    scores = [float(row["score"]) for row in rows]
    correct = [sum(float(r["score"]) >= 0.5 for r in group) for group in by_problem.values()]
    metrics = {"num_problems": len(by_problem), "num_samples": len(rows), "pass@1": sum(scores) / len(scores)}
    for k in pass_at_k_values(n)[1:]:
        metrics[f"pass@{k}"] = sum(pass_at_k(n, c, k) for c in correct) / len(correct)
    metrics["mean_completion_tokens"] = sum(row["num_tokens"] for row in rows) / len(rows)
    metrics["truncated_share"] = sum(bool(row["truncated"]) for row in rows) / len(rows)
    return metrics


def average_over_benchmarks(per_benchmark: dict[str, dict]) -> dict:
    """Unweighted mean of every metric over benchmarks, as the paper's Avg column (not weighted by size)."""
    if not per_benchmark:
        return {}
    keys = set.intersection(*(set(m) for m in per_benchmark.values()))
    keys -= {"num_problems", "num_samples"}
    average = {key: sum(m[key] for m in per_benchmark.values()) / len(per_benchmark) for key in sorted(keys)}
    average["benchmarks"] = list(per_benchmark)
    return average
