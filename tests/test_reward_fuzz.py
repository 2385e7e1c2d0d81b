"""The verifier pool: hung and dead workers, batch budget, code injection, pathological LaTeX.

Every bound here is enforced by the reward's own budgets; the tests assert scores and counters. The pool
tests are slow (they start worker processes); the in-process injection test is not.
"""

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import sympy
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from real_trl.rewards import make_math_reward, make_paper_math_reward, pool

from helpers import r1

WORKERS = 2  # one shared pool for this module (the pool is keyed by pid and size)
GRADERS = [make_math_reward, make_paper_math_reward]


def worker_pool():
    return pool._POOLS[(os.getpid(), WORKERS)]


def test_the_worker_runs_without_torch_or_the_package():
    """A bare interpreter runs worker.py by path: it must import neither torch nor real_trl's __init__."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    command = [sys.executable, "-X", "importtime", str(pool.WORKER_SCRIPT)]
    done = subprocess.run(command, input=b"", capture_output=True, env=env, check=True)
    assert done.stdout == b'{"ready": 1}\n'
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.decode().splitlines() if "|" in line}
    assert {"math_verify", "sympy", "paper_grader"} <= imported
    assert not {m for m in imported if m.split(".")[0] in ("torch", "real_trl", "trl", "transformers")}


@pytest.mark.slow
@pytest.mark.parametrize("make_reward", GRADERS)
def test_pool_matches_in_process_scoring(make_reward):
    answers = ["5", r"\frac{1}{2}", "(1, 2)", r"\text{Evelyn}", "7", r"\frac{1}{2}"]
    completions = [r1("5"), r1("0.5"), r1("(2, 1)"), r1("Evelyn"), "no think \\boxed{7}", r1("1/2")]
    expected = [1.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    assert make_reward(num_workers=0)(completions, answers) == expected
    reward = make_reward(num_workers=WORKERS)
    assert reward(completions, answers) == expected
    assert reward.totals["timeouts"] == reward.totals["worker_restarts"] == 0


@pytest.mark.slow
def test_hung_worker_is_killed_and_replaced():
    reward = make_math_reward(num_workers=WORKERS, timeout=1.0)
    reward([r1("1")], ["1/1"])  # warm the pool
    stuck = worker_pool().workers[0]
    os.kill(stuck.proc.pid, signal.SIGSTOP)  # like a worker stuck in C code: deaf to SIGALRM
    try:
        answers = [rf"\frac{{{k}}}{{1}}" for k in range(1, 7)]
        scores = reward([r1(str(k)) for k in range(1, 7)], answers)
    finally:
        if stuck.proc.poll() is None:
            os.kill(stuck.proc.pid, signal.SIGKILL)
    assert scores[0] == 0.0  # the first job went to the stuck worker
    assert scores[1:] == [1.0] * 5
    assert reward.totals["timeouts"] == 1 and reward.totals["worker_restarts"] == 1
    assert stuck.proc.poll() is not None and stuck not in worker_pool().workers
    assert reward([r1("2")], [r"\frac{4}{2}"]) == [1.0]  # the replacement serves the next batch


@pytest.mark.slow
def test_dead_worker_is_replaced_and_its_job_retried():
    reward = make_math_reward(num_workers=WORKERS)
    reward([r1("1")], ["1/1"])
    for w in worker_pool().workers:
        if w.ready:
            os.kill(w.proc.pid, signal.SIGKILL)
            w.proc.wait()
    scores = reward([r1("3"), r1("4")], [r"\frac{6}{2}", r"\frac{8}{2}"])
    assert scores == [1.0, 1.0]
    assert reward.totals["worker_restarts"] >= 1 and reward.totals["timeouts"] == 0


@pytest.mark.slow
def test_batch_budget_scores_the_rest_zero():
    # One job per worker can run past the soft budget (0.75 s) only once before the batch budget
    # (1.5 s) ends, so the two good completions queued behind the towers are never verified.
    reward = make_math_reward(num_workers=WORKERS, timeout=1.0, batch_timeout=1.5)
    towers = [r1(rf"{k}^{{{k}^{{{k}^{{{k}}}}}}}") for k in (7, 8, 9, 11)]
    scores = reward([*towers, r1("0.5"), r1("0.25")], ["5"] * 4 + [r"\frac{1}{2}", r"\frac{1}{4}"])
    assert scores == [0.0] * 6
    assert reward.totals["timeouts"] == 6


# Each payload runs a shell command when evaluated as Python, as sympy's parse_expr/sympify would do.
SENTINEL = Path(tempfile.gettempdir()) / f"real_trl_pwned_{os.getpid()}"
PAYLOADS = [f"__import__('os').system('touch {SENTINEL}')", f"open('{SENTINEL}', 'w')"]


def injection_strings(code: str) -> list[str]:
    return [
        code,
        rf"\text{{{code}}}",
        rf"\mathrm{{{code}}}",
        rf"\operatorname{{exec}}({code})",
        f"1+{code}",
        f'eval("{code}")',
        f"exec('{code}')",
        f"lambda: {code}",
        f"().__class__.__base__.__subclasses__()[0]; {code}",
        f"{{1, {code}}}",
        rf"\left( 1, {code} \right)",
        rf"x = {code}",
        rf"\begin{{pmatrix}} {code} & 1 \end{{pmatrix}}",
        f"{code} \\cup [0, 1]",
        f"f(x)={code}",
        f"1e{code}",
    ]


INJECTIONS = [s for code in PAYLOADS for s in injection_strings(code)]


@pytest.fixture
def sentinel():
    SENTINEL.unlink(missing_ok=True)
    yield SENTINEL
    SENTINEL.unlink(missing_ok=True)


def test_payloads_are_live(sentinel):
    """What the graders must never do: evaluating a payload creates the sentinel."""
    for payload in PAYLOADS:
        sympy.sympify(payload)
        assert sentinel.exists()
        sentinel.unlink()


@pytest.mark.parametrize("make_reward", GRADERS)
def test_injection_never_runs_in_process(sentinel, make_reward):
    """In-process, where a successful injection would run in the trainer itself (not slow: no pool)."""
    reward = make_reward(num_workers=0)
    completions = [r1(p) for p in INJECTIONS] + [f"</think>{p}" for p in INJECTIONS]
    # payloads as references too: references are trusted, but they take the same road
    scores = reward(completions, ["5"] * len(INJECTIONS) + INJECTIONS)
    assert not sentinel.exists()
    assert scores[: len(INJECTIONS)] == [0.0] * len(INJECTIONS)
    assert all(s in (0.0, None) for s in scores[len(INJECTIONS) :])


@pytest.mark.slow
@pytest.mark.parametrize("make_reward", GRADERS)
def test_injection_never_runs_in_the_pool(sentinel, make_reward):
    reward = make_reward(num_workers=WORKERS)
    scores = reward([r1(p) for p in INJECTIONS], INJECTIONS)
    assert not sentinel.exists()
    assert all(s in (0.0, 1.0, None) for s in scores)


LATEX_TOKENS = [r"\frac", r"\sqrt", "{", "}", "^", "_", "(", ")", "[", "]", ",", "=", "!", "9", "x", r"\pi",
                r"\text{", r"\cup", r"\infty", "\\", "$", " ", "__import__", "'os'", ".system", "eval", "exec",
                *PAYLOADS]  # fmt: skip
SOUP = st.lists(st.sampled_from(LATEX_TOKENS), max_size=40).map("".join)


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(st.lists(SOUP, min_size=16, max_size=16))
@example(PAYLOADS * 8)
def test_fuzzed_latex_never_runs_an_injection(answers):
    """LaTeX token soup, payloads included, through both graders' pools: scores are 0/1, no sentinel."""
    SENTINEL.unlink(missing_ok=True)
    for make_reward in GRADERS:
        reward = make_reward(num_workers=WORKERS, timeout=1.0)
        scores = reward([r1(a) for a in answers], ["5"] * len(answers))
        assert all(s in (0.0, 1.0, None) for s in scores)
        assert not SENTINEL.exists()


@pytest.mark.slow
def test_pathological_latex_costs_at_most_the_budget():
    reward = make_math_reward(num_workers=WORKERS, timeout=1.0)
    slow = [  # each would take minutes to hours to evaluate
        r"9^{9^{9^{9}}}",
        r"10^{10^{10^{10}}} - 10^{10^{10^{10}}}",
        r"(10^{8})!",
        r"\binom{10^{9}}{10^{8}}",
        r"\sqrt[3]{10^{10^{10}}}",
    ]
    rejected = [  # never parsed: longer than max_answer_chars, or unbalanced
        "{" * 10_000 + "1" + "}" * 10_000,
        "\\frac{1}{" * 5_000,
        "1" * 50_000,
    ]
    completions = [r1(s) for s in slow] + [r1(s) for s in rejected] + [r1(r"\frac{10}{2}")]
    completions.append("<think>" + "\\boxed{1} " * 100_000 + "</think>\n" + "\\boxed{" * 20_000)
    logged = {}
    scores = reward(completions, ["5"] * len(completions), log_metric=lambda k, v: logged.__setitem__(k, v))
    assert scores == [0.0] * (len(slow) + len(rejected)) + [1.0, 0.0]
    assert logged["math_reward/timeouts"] == len(slow)
    assert logged["math_reward/no_answer"] == len(rejected) + 1
