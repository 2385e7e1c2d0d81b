"""math_reward: extraction, references, equivalence over the benchmarks' answer types, counters; the registry."""

import math
import re

import numpy as np
import pytest

from real_trl.data import BENCHMARK_DIR, EVAL_BENCHMARKS
from real_trl.rewards import (
    METRICS,
    REWARD_NAMES,
    build_rewards,
    digit_reward,
    extract_answer,
    make_math_reward,
    math_reward,
    paper_math_reward,
    reference_answers,
    think_then_boxed_reward,
)

from helpers import r1

# In-process scoring: the comparisons are the subject here, the pool is tested in test_reward_fuzz.py.
local_reward = make_math_reward(num_workers=0)


@pytest.mark.parametrize(
    "text, require_think, expected",
    [
        (r"<think>try \boxed{1}</think> so \boxed{2}", True, "2"),
        (r"<think>the answer is \boxed{1}</think> I give up", True, None),  # boxes inside reasoning don't count
        (r"no reasoning tags \boxed{3}", True, None),
        (r"no reasoning tags \boxed{3}", False, "3"),
        (r"</think> a </think> \boxed{4}", True, "4"),  # after the last closing tag
        (r"</think> \boxed{\frac{1}{\sqrt{2}}}", True, r"\frac{1}{\sqrt{2}}"),
        (r"</think> \boxed{\{1, 2\}}", True, r"\{1, 2\}"),  # escaped braces don't close the box
        (r"</think> \fbox{7}", True, "7"),
        (r"</think> the answer is \boxed 5.", True, "5"),
        (r"</think> $\boxed{6}$", True, "6"),
        (r"</think> \boxed{$8$}", True, "8"),
        (r"</think> \boxed{1} then \boxed{9}", True, "9"),
        (r"</think> \boxed{\frac{1}{2", True, None),  # truncated generation
        (r"</think> \boxed{}", True, None),
        (r"</think> \boxedx{1}", True, None),
        ("</think> \\boxed{" + "1" * 2000 + "}", True, None),  # longer than max_answer_chars
        ("</think> \\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}", True, None),
    ],
)
def test_extract_answer(text, require_think, expected):
    assert extract_answer(text, require_think=require_think) == expected


def test_extract_answer_conversational():
    completion = [{"role": "assistant", "content": r"<think>x</think>\boxed{12}"}]
    assert extract_answer(completion) == "12"
    blocks = [{"role": "assistant", "content": [{"type": "text", "text": r"</think>\boxed{13}"}]}]
    assert extract_answer(blocks) == "13"


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("204", ("204",)),
        (142.0, ("142",)),
        (np.float64(-4.0), ("-4",)),
        (0.5, ("0.5",)),
        (70, ("70",)),
        (np.array(["9.6\n"], dtype=object), ("9.6",)),
        (["0.01\n", "0.02\n"], ("0.01", "0.02")),
        (None, None),
        ("  ", None),
        (float("nan"), None),
        ([], None),
    ],
)
def test_reference_answers(answer, expected):
    assert reference_answers(answer) == expected


# (reference, boxed prediction, expected score): every answer type of the six benchmarks.
EQUIVALENCE_CASES = [
    # integers (AIME, AMC's floats)
    ("204", "204", 1.0),
    ("025", "25", 1.0),
    ("204", "205", 0.0),
    (142.0, "142", 1.0),
    (142.0, "142.0", 1.0),
    (70, "70", 1.0),
    (-4.0, "-4", 1.0),
    (-4.0, "4", 0.0),
    # fractions
    (r"\frac{14}{3}", r"\dfrac{14}{3}", 1.0),
    (r"\frac{14}{3}", "14/3", 1.0),
    (r"\frac{14}{3}", r"\frac{3}{14}", 0.0),
    # decimals and scientific notation (Minerva)
    ("1.25", r"\frac{5}{4}", 1.0),
    ("0.15", "0.16", 0.0),
    (["9.6\n"], "9.6", 1.0),
    (["9.6\n"], "9.7", 0.0),
    (r"8.7 \times 10^{8}", r"8.7\times10^8", 1.0),
    (r"8.7 \times 10^{8}", r"8.7 \times 10^{9}", 0.0),
    (["4.5e33\n"], r"4.5 \times 10^{33}", 1.0),
    (["4.5e33\n"], "4.5e33", 1.0),
    (["4.5e33\n"], "4.5e34", 0.0),
    # tuples (ordered)
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3, \frac{\pi}{2})", 1.0),
    (r"\left( 3, \frac{\pi}{2} \right)", r"(\frac{\pi}{2}, 3)", 0.0),
    # intervals
    ("[0, 1)", "[0,1)", 1.0),
    ("[0, 1)", "(0,1)", 0.0),
    (r"(-\infty, -2] \cup [3, \infty)", r"(-\infty,-2]\cup[3,\infty)", 1.0),
    (r"(-\infty, -2] \cup [3, \infty)", r"(-\infty,-2)\cup(3,\infty)", 0.0),
    # matrices
    (r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}", r"\begin{bmatrix} 1 & 2 \\ 3 & 4 \end{bmatrix}", 1.0),
    (r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}", r"\begin{pmatrix} 1 & 2 \\ 3 & 5 \end{pmatrix}", 0.0),
    # sets and lists of solutions (OlympiadBench writes "$69$,$84$")
    (["$69$,$84$"], "84, 69", 1.0),
    (["$69$,$84$"], "69", 0.0),
    ("1,3,5", "1, 3, 5", 1.0),
    ("1,3,5", "1,3", 0.0),
    (r"\{1, 2\}", r"\{2, 1\}", 1.0),
    # text answers
    (r"\text{Evelyn}", "Evelyn", 1.0),
    (r"\text{Evelyn}", r"\text{Bob}", 0.0),
    (r"\text{(C)}", "C", 1.0),
    (r"\text{(C)}", r"\text{(D)}", 0.0),
    # an answer wrapped in \text{}: math-verify alone reads it as a word
    ("(C)", r"\text{(C)}", 1.0),
    ("5", r"\text{5}", 1.0),
    ("5", r"\text{ 5 }", 1.0),
    ("5", r"\text{6}", 0.0),
    (r"\frac{1}{2}", r"\text{0.5}", 1.0),
    ("(C)", r"\text{(D)}", 0.0),
    # units and degrees
    (r"90^\circ", "90", 1.0),
    (r"90^\circ", r"90^{\circ}", 1.0),
    (r"90^\circ", r"45^\circ", 0.0),
    (["41.8^\\circ\n"], "41.8", 1.0),
    (r"5 \text{ cm}", "5", 1.0),
    (r"5 \text{ cm}", r"6 \text{ cm}", 0.0),
    (["2.7778 \\times 10^{-6}\n"], r"2.7778 \times 10^{-6} \text{ m}", 1.0),
    (r"10\%", "10", 1.0),
    (r"\$18.90", "18.90", 1.0),
    ("52_8", "52_8", 1.0),
    ("52_8", "42_8", 0.0),
    # expressions, radicals, complex numbers, equations
    ("p - q", "-q + p", 1.0),
    ("p - q", "q - p", 0.0),
    (r"3\sqrt{13}", r"\sqrt{117}", 1.0),
    (r"3\sqrt{13}", r"3\sqrt{14}", 0.0),
    ("6 - 5i", "6-5i", 1.0),
    ("6 - 5i", "6+5i", 0.0),
    ("x=5", "5", 1.0),
    ("x=5", "x=6", 0.0),
    (["$f(x)=2 x$"], "f(x)=2x", 1.0),
    (["$f(x)=2 x$"], "f(x)=3x", 0.0),
    # several acceptable answers (Minerva)
    (["0.01\n", "0.02\n"], "0.02", 1.0),
    (["0.01\n", "0.02\n"], "0.03", 0.0),
]


def test_equivalence_over_answer_types():
    refs = [ref for ref, _, _ in EQUIVALENCE_CASES]
    scores = local_reward([r1(pred) for _, pred, _ in EQUIVALENCE_CASES], refs)
    wrong = [
        (ref, pred, want, got) for (ref, pred, want), got in zip(EQUIVALENCE_CASES, scores, strict=True) if got != want
    ]
    assert not wrong


def test_require_think_option():
    text = r"The answer is \boxed{5}."
    assert local_reward([text], ["5"]) == [0.0]
    assert make_math_reward(require_think=False, num_workers=0)([text], ["5"]) == [1.0]


def test_unparseable_reference_gives_none_and_is_counted():
    logged = {}
    scores = local_reward(
        [r1("5")] * 4, [None, float("nan"), "}{", "5"], log_metric=lambda k, v: logged.__setitem__(k, v)
    )
    assert scores == [None, None, None, 1.0]
    assert logged["math_reward/unparseable_refs"] == 3.0
    assert set(logged) == {f"math_reward/{m}" for m in METRICS}


def test_counters_and_name():
    reward = make_math_reward(num_workers=0)
    assert reward.__name__ == "math_reward" and math_reward.__name__ == "math_reward"
    logged = []
    reward(
        ["no answer at all", r1("3"), "</think> \\boxed{" + "9" * 5000 + "}"],
        ["3", "3", "3"],
        log_metric=lambda k, v: logged.append((k, v)),
    )
    assert ("math_reward/no_answer", 2.0) in logged
    assert reward.totals["no_answer"] == 2


def test_conversational_completions_and_errors():
    completions = [[{"role": "assistant", "content": r1("12")}], [{"role": "assistant", "content": r1("13")}]]
    assert local_reward(completions, ["12", "12"]) == [1.0, 0.0]
    with pytest.raises(ValueError, match="'answer' dataset column"):
        local_reward(completions)
    with pytest.raises(ValueError, match="2 completions but 1 answers"):
        local_reward(completions, ["12"])


def test_completion_of_the_wrong_type_names_the_expected_forms():
    with pytest.raises(TypeError, match=r"a string or a list of chat messages .*got int"):
        local_reward([5], ["5"])
    with pytest.raises(TypeError, match="got NoneType"):
        extract_answer(None)


def test_think_then_boxed_reward():
    completions = [
        r1("1"),  # opening tag in the completion
        "reasoning...\n</think>\n\\boxed{1}",  # opening tag in the prompt (R1 template)
        "reasoning without end \\boxed{1}",
        "</think> \\boxed{1} </think>",
        "<think> a </think> b <think> \\boxed{1}",
        "</think> no box",
    ]
    assert think_then_boxed_reward(completions) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]


def test_digit_reward():
    assert digit_reward(["no digits", "x2", [{"role": "assistant", "content": "7"}]]) == [0.0, 1.0, 1.0]


def test_registry_builds_every_name():
    assert REWARD_NAMES == ("math_reward", "paper_math_reward", "think_then_boxed_reward", "digit_reward")
    built = build_rewards(list(REWARD_NAMES), require_think=False)
    assert [f.__name__ for f in built] == list(REWARD_NAMES)
    assert built[0].require_think is False and built[1].require_think is False
    assert build_rewards(["math_reward"])[0].require_think is True
    assert built[1].extract(r"\boxed{3}") == "3" and built[0].extract(r"\fbox{3}") == "3"
    assert build_rewards([]) == []


def test_registry_rejects_unknown_names():
    message = (
        "unknown reward function(s) think_format_reward, accuracy: choose from math_reward, paper_math_reward, "
        "think_then_boxed_reward, digit_reward"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        build_rewards(["math_reward", "think_format_reward", "accuracy"])


def test_module_level_rewards_extract():
    assert math_reward.extract(r1("7")) == "7" and paper_math_reward.extract(r1("7")) == "7"
    text = r"<think>a</think> \boxed{1} </think> \boxed{2}"
    assert math_reward.extract(text) == "2" and paper_math_reward.extract(text) == "1"


@pytest.mark.slow
def test_all_benchmark_answers_round_trip():
    """For each of the 1,590 benchmark problems: the reference boxed scores 1, another answer scores 0."""
    pq = pytest.importorskip("pyarrow.parquet")
    refs = []
    for name in EVAL_BENCHMARKS:
        table = pq.read_table(BENCHMARK_DIR / f"{name}.parquet").to_pylist()
        refs += [(name, row["reward_model"]["ground_truth"]) for row in table]
    assert len(refs) == 1590

    def shown(ref) -> str:  # the first acceptable answer as a model would box it: no math delimiters
        return re.sub(r"(?<!\\)\$", "", reference_answers(ref)[0])

    def same(a: str, b: str) -> bool:  # equal, or one is the other as an assignment ("x=5" and "5")
        a, b = a.replace(" ", ""), b.replace(" ", "")
        return a == b or a.split("=")[-1] == b or b.split("=")[-1] == a

    right = [r1(shown(ref)) for _, ref in refs]
    wrong = []
    for i, (_, ref) in enumerate(refs):
        j = (i + 1) % len(refs)  # the next reference that differs
        while same(shown(refs[j][1]), shown(ref)):
            j = (j + 1) % len(refs)
        wrong.append(r1(shown(refs[j][1])))

    # A generous budget: this checks equivalence, not speed, and CI machines can be busy.
    reward = make_math_reward(num_workers=2, timeout=30.0)
    answers = [ref for _, ref in refs]
    scores = reward(right + wrong, answers + answers)
    misses = [(name, ref) for (name, ref), s in zip(refs, scores[: len(refs)], strict=True) if s != 1.0]
    false_hits = [(name, ref) for (name, ref), s in zip(refs, scores[len(refs) :], strict=True) if s != 0.0]
    print(f"misses: {misses}\nfalse matches: {false_hits}")
    assert len(misses) + len(false_hits) <= math.floor(0.01 * 2 * len(refs))
    assert reward.totals["timeouts"] == 0
