"""Throughput of `real_trl.rewards.math_reward` against TRL's `accuracy_reward`, measured in one run
(and of `paper_math_reward`, the official rules, on the same completions).

    python bench/reward_throughput.py                      # 1,024 completions, batches of 128
    python bench/reward_throughput.py --pathological 0     # without the 1% pathological answers

Completions look like R1 rollouts: groups of 8 per problem, a few thousand characters of reasoning,
then `</think>` and a boxed answer (right, wrong, missing, or -- 1% of them -- pathological LaTeX
such as towers of exponents). References are the real answers of the six benchmark files shipped in
real_trl/benchmarks/. Both rewards score the same batches in
TRL's conversational form. Before the clock starts, both score `--warmup` completions of other
problems (worker start-up and the parsers' lazy caches), as they would early in a training run.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import time
from pathlib import Path

# Each takes math-verify minutes to hours. (Not in this list: "10^{10^{10^{10}}} - 10^{10^{10^{10}}}",
# which hangs inside C code, where accuracy_reward's SIGALRM can't reach it: the baseline never ends.)
PATHOLOGICAL = [r"9^{9^{9^{9}}}", r"(10^{8})!", r"\binom{10^{9}}{10^{8}}", r"\sqrt[3]{10^{10^{10}}}"]
SENTENCES = [
    "Let me denote the unknown quantity by $x$ and set up the equation $3x + 7 = 2x - 5$.",
    "Wait, that does not look right; let me recompute $\\frac{a^2 + b^2}{2ab}$ carefully.",
    "By the AM-GM inequality, $\\frac{a+b}{2} \\ge \\sqrt{ab}$, with equality when $a = b$.",
    "So the discriminant is $b^2 - 4ac = 49 - 40 = 9$, which gives two real roots.",
    "Hmm, maybe I should try small cases first: $n = 1, 2, 3$ give $1, 5, 14$.",
    "Substituting back, we get $f(2) = 2 \\cdot 2^2 - 3 = 5$, consistent with the earlier step.",
    "Alternatively, consider the generating function $\\sum_{k \\ge 0} \\binom{n}{k} t^k = (1+t)^n$.",
    "Let me double-check the arithmetic: $17 \\times 23 = 391$, and $391 - 200 = 191$.",
]


def load_references() -> list:
    import pyarrow.parquet as pq

    from real_trl.data import BENCHMARK_DIR, EVAL_BENCHMARKS

    tables = [pq.read_table(BENCHMARK_DIR / f"{name}.parquet").to_pylist() for name in EVAL_BENCHMARKS]
    return [row["reward_model"]["ground_truth"] for table in tables for row in table]


def shown(ref) -> str:
    """The first acceptable answer, as a model would box it."""
    from real_trl.rewards import reference_answers

    return re.sub(r"(?<!\\)\$", "", reference_answers(ref)[0])


def make_completions(refs: list, n: int, pathological: float, seed: int):
    """`n` completions in groups of 8 per problem, and the reference of each."""
    rng = random.Random(seed)
    completions, answers = [], []
    while len(completions) < n:
        ref = rng.choice(refs)
        wrong = [shown(rng.choice(refs)) for _ in range(2)]
        solve_rate = rng.random()
        for _ in range(8):
            reasoning = " ".join(rng.choice(SENTENCES) for _ in range(rng.randint(20, 60)))
            u = rng.random()
            if u < pathological:
                final = rf"\boxed{{{rng.choice(PATHOLOGICAL)}}}"
            elif u < 0.08:
                final = "I am running out of space, so"  # truncated: no boxed answer
            elif rng.random() < solve_rate:
                final = rf"The final answer is $\boxed{{{shown(ref)}}}$."
            else:
                final = rf"The final answer is $\boxed{{{rng.choice(wrong)}}}$."
            text = f"{reasoning}\n</think>\n\nPutting it together: {final}"
            completions.append([{"role": "assistant", "content": text}])
            answers.append(ref)
    return completions[:n], answers[:n]


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) used so far by this process and the live processes `pids` (Linux)."""
    total = time.process_time()
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass  # a worker that was replaced: its time is lost (counted as 0)
    return total


def run(name: str, func, completions, answers, batch: int, pids=list) -> tuple[list, float, float]:
    scores, slowest = [], 0.0
    cpu0 = cpu_seconds(pids())
    start = time.perf_counter()
    for i in range(0, len(completions), batch):
        t = time.perf_counter()
        scores += func(completions[i : i + batch], answers[i : i + batch])
        slowest = max(slowest, time.perf_counter() - t)
    total = time.perf_counter() - start
    cpu = cpu_seconds(pids()) - cpu0
    print(
        f"{name:>16}: {len(completions) / total:8.1f} completions/s   total {total:6.1f} s   "
        f"slowest batch {slowest:5.2f} s   CPU {cpu:6.1f} s",
        flush=True,
    )
    return scores, total, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=128, help="completions per reward call (one rank's batch)")
    parser.add_argument("--pathological", type=float, default=0.01, help="fraction of pathological answers")
    parser.add_argument("--workers", type=int, default=None, help="verifier processes (default: usable cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--warmup",
        type=int,
        default=256,
        help="completions (other problems) scored by both before timing: a long run's steady state",
    )
    args = parser.parse_args()

    from trl.rewards import accuracy_reward

    from real_trl.rewards import default_num_workers, make_math_reward, make_paper_math_reward, worker_pids

    completions, answers = make_completions(load_references(), args.n, args.pathological, args.seed)
    solutions = [shown(a) for a in answers]  # accuracy_reward takes one reference string
    workers = default_num_workers() if args.workers is None else args.workers
    n_path = sum(any(p in c[0]["content"] for p in PATHOLOGICAL) for c in completions)
    chars = sum(len(c[0]["content"]) for c in completions) / len(completions)
    print(
        f"{len(completions)} completions ({n_path} pathological, {chars:.0f} characters on average), "
        f"batches of {args.batch}, {workers} verifier workers on {len(os.sched_getaffinity(0))} usable cores"
    )

    reward, paper = make_math_reward(num_workers=workers), make_paper_math_reward(num_workers=workers)
    warm_c, warm_a = make_completions(load_references(), max(1, args.warmup), 0.0, args.seed + 1)
    t = time.perf_counter()
    reward(warm_c, warm_a)  # start the pool; the parsers of each process warm up (ANTLR caches)
    t_pool = time.perf_counter() - t
    accuracy_reward(warm_c, [shown(a) for a in warm_a])
    print(
        f"{'warm-up':>16}: {t_pool:.1f} s math_reward (pool start included), "
        f"{time.perf_counter() - t - t_pool:.1f} s accuracy_reward, on {len(warm_c)} other completions",
        flush=True,
    )
    paper(warm_c, warm_a)
    reward.totals = dict.fromkeys(reward.totals, 0)

    ours, t_ours, cpu_ours = run("math_reward", reward, completions, answers, args.batch, worker_pids)
    theirs, t_theirs, cpu_theirs = run("accuracy_reward", accuracy_reward, completions, solutions, args.batch)
    run("paper_math_reward", paper, completions, answers, args.batch, worker_pids)
    print(
        f"{'speed-up':>16}: {t_theirs / t_ours:.2f}x wall clock, {cpu_theirs / cpu_ours:.2f}x less CPU time; "
        f"load average {os.getloadavg()[0]:.1f} on {len(os.sched_getaffinity(0))} cores (other work slows both)"
    )
    print(f"{'counters':>16}: {reward.totals}")
    agree = sum((a or 0.0) == (b or 0.0) for a, b in zip(ours, theirs, strict=True)) / len(ours)
    print(
        f"{'agreement':>16}: {agree:.1%} of completions get the same score from both "
        f"(mean reward {sum(s or 0 for s in ours) / len(ours):.3f} vs {sum(s or 0 for s in theirs) / len(theirs):.3f})"
    )


if __name__ == "__main__":
    main()
