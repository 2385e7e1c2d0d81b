"""paper_math_reward: the official release's extraction and equivalence rules, rule by rule, and its safety."""

import pytest
import sympy
import sympy.parsing.sympy_parser

from real_trl.rewards import extract_paper_answer, make_paper_math_reward, paper_math_reward
from real_trl.rewards.paper_grader import Unsupported, equivalent, mathd_normalise, to_sympy

from helpers import r1

local_reward = make_paper_math_reward(num_workers=0)


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"<think>a</think> \boxed{1} </think> \boxed{2}", "1"),  # after the FIRST </think>, up to the next
        (r"<think>\boxed{1}</think> no box here", None),  # a box in the reasoning doesn't count
        (r"no reasoning tags \boxed{3}", None),  # no </think>: no answer
        (r"</think> \boxed{1} then \boxed{9}", "9"),  # the last box
        (r"</think> \fbox{7}", None),  # only \boxed counts
        (r"</think> the answer is \boxed 5.", None),
        (r"</think> \boxed{1} or \boxed 5", None),  # the last \boxed decides
        (r"</think> $\boxed{\frac{1}{2}}$", r"\frac{1}{2}"),
        (r"</think> \boxed{\frac{1}{2", None),  # truncated
        (r"</think> \boxed{}", None),
    ],
)
def test_extraction_rules(text, expected):
    assert extract_paper_answer(text) == expected
    assert paper_math_reward.extract(text) == expected


def test_no_think_scores_zero_unless_not_required():
    assert local_reward([r"\boxed{5}"], ["5"]) == [0.0]
    assert make_paper_math_reward(require_think=False, num_workers=0)([r"\boxed{5}"], ["5"]) == [1.0]


@pytest.mark.parametrize(
    "answer, normal",
    [
        (r"\left( 3, \dfrac{\pi}{2} \right)", r"(3,\frac{\pi}{2})"),
        (r"\tfrac12", r"\frac{1}{2}"),
        (r"\frac1{2}", r"\frac{1}{2}"),
        (r"\sqrt3", r"\sqrt{3}"),
        ("0.5", r"\frac{1}{2}"),
        ("3/4", r"\frac{3}{4}"),
        ("x = 5", "5"),
        ("k=5", "5"),
        ("f(x)=2x", "f(x)=2x"),  # left side longer than 2 characters: kept
        (r"5 \text{ cm}", "5"),
        (r"90^\circ", "90"),
        (r"90^{\circ}", "90"),
        (r"10\%", "10"),
        (r"\$18.90", "18.90"),
        (".5", r"\frac{1}{2}"),
        (r"\text{(C)}", "(C)"),
        ("1\n2", "12"),
    ],
)
def test_mathd_normalisation(answer, normal):
    assert mathd_normalise(answer) == normal


# (reference, boxed answer, expected score), one or more per rule
CASES = [
    # exact and normalised-string equality
    ("204", "204", 1.0), ("204", "205", 0.0), (r"\frac{14}{3}", r"\dfrac{14}{3}", 1.0),
    (r"\frac{14}{3}", r"\tfrac{14}{3}", 1.0), (r"\frac{14}{3}", "14/3", 1.0), ("5", "x = 5", 1.0),
    ("x=5", "5", 1.0), (r"5 \text{ cm}", "5", 1.0), (r"90^\circ", "90", 1.0), (r"\$18.90", "18.90", 1.0),
    # \text{} around an answer is accepted
    ("(C)", r"\text{(C)}", 1.0), ("5", r"\text{5}", 1.0), (r"\text{Evelyn}", "Evelyn", 1.0),
    (r"\text{(C)}", "C", 1.0), ("(C)", r"\text{(D)}", 0.0),
    # integers: "5.0" is 5, but an integer reference needs an integer answer
    ("5", "5.0", 1.0), ("025", "25", 1.0), (142.0, "142", 1.0), ("5", r"\frac{10}{2}", 0.0), ("5", "10/2", 0.0),
    ("5", r"\sqrt{25}", 0.0), ("1000", "1,000", 1.0),
    # fractions: an unreduced fraction is not its reduced form, decimals are compared symbolically
    (r"\frac{1}{2}", r"\frac{2}{4}", 0.0), (r"\frac{1}{2}", "2/4", 0.0), (r"\frac{1}{2}", "1/2", 1.0),
    (r"\frac{1}{2}", "0.5", 1.0), ("1.25", r"\frac{5}{4}", 1.0), (r"-\frac{1}{2}", "-0.5", 1.0),
    # symbolic equality
    (r"3\sqrt{13}", r"\sqrt{117}", 1.0), (r"3\sqrt{13}", r"3\sqrt{14}", 0.0), ("p - q", "-q + p", 1.0),
    ("p - q", "q - p", 0.0), (r"\frac{\pi}{2}", r"\pi/2", 1.0), (r"2\pi", r"\pi \cdot 2", 1.0),
    (r"\sqrt[3]{8}", r"\sqrt[3]{8}", 1.0), ("a+b+c", "c+b+a", 0.0),  # three variables: no symbolic check
    # tuples and intervals: element-wise, in order, same brackets
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3, \frac{\pi}{2})", 1.0),
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3, \frac{2\pi}{4})", 1.0),
    (r"\left( 3, \frac{\pi}{2} \right)", r"(\frac{\pi}{2}, 3)", 0.0), ("(1, 2)", "(1, 2, 3)", 0.0),
    ("[0, 1)", "[0,1)", 1.0), ("[0, 1)", "(0,1)", 0.0), ("[0, 1)", "[0, 1]", 0.0),
    (r"(-\infty, -2] \cup [3, \infty)", r"(-\infty,-2]\cup[3,\infty)", 1.0),
    # several acceptable answers; another problem's answer
    (["0.01\n", "0.02\n"], "0.02", 1.0), (["0.01\n", "0.02\n"], "0.03", 0.0), ("p - q", "204", 0.0),
]  # fmt: skip


def test_equivalence_rules():
    scores = local_reward([r1(pred) for _, pred, _ in CASES], [ref for ref, _, _ in CASES])
    wrong = [(ref, pred, want, got) for (ref, pred, want), got in zip(CASES, scores, strict=True) if got != want]
    assert not wrong


def test_the_symbolic_path_never_parses_text_as_python(monkeypatch):
    calls = []
    monkeypatch.setattr(sympy.parsing.sympy_parser, "parse_expr", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(sympy.parsing.sympy_parser, "eval_expr", lambda *a, **k: calls.append(a))
    assert equivalent(r"\sqrt{117}", (r"3\sqrt{13}",)) and equivalent("0.5", (r"\frac{1}{2}",))
    assert not equivalent(r"\frac{2}{4}", (r"\frac{1}{2}",))
    assert calls == []


def test_to_sympy_reads_its_subset():
    x = sympy.Symbol("x")
    assert to_sympy(r"\frac{1}{2} + 2x^{2}") == sympy.Rational(1, 2) + 2 * x**2
    assert to_sympy(r"\left(3\sqrt{2}\right)\pi") == 3 * sympy.sqrt(2) * sympy.pi
    assert to_sympy(r"-\infty") == -sympy.oo
    assert to_sympy(r"\text{7}") == 7


@pytest.mark.parametrize(
    "latex",
    [
        "__import__('os').system('true')",  # quotes, dots, underscores: not in the subset
        r"\exec{1}",
        "9^{9^{9}}",  # exponent over the limit
        "(10^{50})^{1000}" + "^{1000}",
        "(" * 40 + "1" + ")" * 40,  # nested too deeply
        "1+" * 150 + "1",  # too many tokens
        r"\sqrt[10^{9}]{2}",
        "1,2",
        "(1",
    ],
)
def test_to_sympy_refuses_the_rest(latex):
    with pytest.raises(Unsupported):
        to_sympy(latex)
