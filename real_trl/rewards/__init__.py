"""Math rewards for REAL: answer extraction, two graders (math-verify, and the official release's rules),
a bounded pool of verifier processes, and the reward registry. See docs/rewards.md.

Modules: `extraction` (pure strings), `worker` (the verifier a worker process runs), `paper_grader`
(the official equivalence rules, no code execution), `pool` (worker processes and budgets),
`functions` (the reward functions), `registry` (names -> functions).
"""

from real_trl.rewards.extraction import (
    MAX_ANSWER_CHARS,
    THINK_CLOSE,
    completion_text,
    extract_answer,
    extract_paper_answer,
    reference_answers,
)
from real_trl.rewards.functions import (
    DEFAULT_TIMEOUT,
    METRICS,
    MathReward,
    PaperMathReward,
    digit_reward,
    make_math_reward,
    make_paper_math_reward,
    math_reward,
    paper_math_reward,
    think_then_boxed_reward,
)
from real_trl.rewards.pool import WorkerPool, default_num_workers, usable_cores, worker_pids
from real_trl.rewards.registry import REWARD_NAMES, build_rewards

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_ANSWER_CHARS",
    "METRICS",
    "REWARD_NAMES",
    "THINK_CLOSE",
    "MathReward",
    "PaperMathReward",
    "WorkerPool",
    "build_rewards",
    "completion_text",
    "default_num_workers",
    "digit_reward",
    "extract_answer",
    "extract_paper_answer",
    "make_math_reward",
    "make_paper_math_reward",
    "math_reward",
    "paper_math_reward",
    "reference_answers",
    "think_then_boxed_reward",
    "usable_cores",
    "worker_pids",
]
