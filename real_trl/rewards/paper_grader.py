"""The official release's answer equivalence (the DeepScaleR grader's rules), never executing model text.

An answer is equivalent to a reference when either

1. their Hendrycks-MATH normal forms are the same string (`mathd_normalise`: spaces, `\\left`/`\\right`,
   `\\dfrac`, trailing units `\\text{ cm}`, degrees, `x = ` prefixes, `0.5`, `a/b` ...), or
2. a symbolic check says so (`symbolic_equal`), with the official restrictions: a tuple or interval is
   compared element by element, in order, with the same brackets; two literal fractions must be the
   same fraction (`\\frac{2}{4}` is not `\\frac{1}{2}`); an integer needs an integer (`\\frac{10}{2}` is
   not `5`); at most two distinct variables.

`\\text{...}` around a whole answer is dropped on both paths. The symbolic path never hands a string to
sympy's parser (which `eval`s): `to_sympy` reads a small LaTeX subset itself (numbers, one-letter
variables, `+ - * / ^`, implicit products, parentheses and braces, `\\frac`, `\\sqrt`, `\\pi`, `\\infty`,
`\\text{}`) into sympy objects, within size limits; anything else is "not equivalent".

Stdlib and sympy only: the verifier worker imports this file by itself, outside the package.
"""

from __future__ import annotations

import re
from fractions import Fraction

import sympy

MAX_TOKENS = 200
MAX_DEPTH = 30
MAX_EXPONENT = 1000  # 2^1000 is fine, 9^(9^9) is not
MAX_BASE = 10**50  # no power of an already huge number: towers stop here

_TEXT_GROUP_RE = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
_UNITS_RE = re.compile(
    r"(?:degree|cm|centimeter|meter|mile|second|minute|hour|day|week|month|year|foot|feet|inch|yard)"
    r"(?:es)?s? *(?:\^[0-9]+)?"
)
_THOUSANDS_RE = re.compile(r"(\d),(\d\d\d)(?=$|\D)")
_NUMBER_RE = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)")
_FRACTION_RE = re.compile(r"(-?)(?:\\frac\{(\d+)\}\{(\d+)\}|(\d+)/(\d+))")
_TOKEN_RE = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+|\\[A-Za-z]+|\\[,;:! ]|[A-Za-z]|[-+*/^(){}\[\]])")
_SKIPPED = {r"\left", r"\right", r"\,", r"\;", r"\:", r"\!", "\\ "}
_TEXT_COMMANDS = {r"\text", r"\mathrm", r"\textbf", r"\mathbf", r"\mbox"}
_FRAC_COMMANDS = {r"\frac", r"\dfrac", r"\tfrac"}
_ATOM_STARTS = {"(", "{", r"\sqrt", r"\pi", r"\infty"} | _TEXT_COMMANDS | _FRAC_COMMANDS


class Unsupported(ValueError):
    """The answer is outside the LaTeX subset `to_sympy` reads, or over its size limits."""


def unwrap_text(answer: str) -> str:
    """`\\text{X}` around a whole answer -> `X` (a model's `\\boxed{\\text{(C)}}` means `(C)`)."""
    answer = answer.strip()
    if not answer.startswith("\\text{") or not answer.endswith("}"):
        return answer
    depth = 0
    for ch in answer[5:-1]:  # the group that "\\text" opens must close only at the end
        depth += (ch == "{") - (ch == "}")
        if depth == 0:
            return answer
    return answer[6:-1].strip()


# ---------------------------------------------------------------------------------------------
# 1. Hendrycks-MATH string normalisation
# ---------------------------------------------------------------------------------------------

_MATHD_REPLACEMENTS = [
    ("\n", ""), ("\\!", ""), ("\\\\", "\\"), ("tfrac", "frac"), ("dfrac", "frac"), ("\\left", ""),
    ("\\right", ""), ("^{\\circ}", ""), ("^\\circ", ""), ("\\$", ""),
]  # fmt: skip


def mathd_normalise(answer: str) -> str:
    """The Hendrycks-MATH normal form of an answer; two answers with the same form are equivalent."""
    s = unwrap_text(answer)
    for old, new in _MATHD_REPLACEMENTS:
        s = s.replace(old, new)
    s = s.split("\\text{ ")[0]  # units: "5 \text{ cm}"
    s = s.replace("\\%", "").replace(" .", " 0.").replace("{.", "{0.")
    if s.startswith("."):
        s = "0" + s
    lhs, _, rhs = s.partition("=")
    if s.count("=") == 1 and len(lhs) <= 2:  # "x = 5", "k=5"
        s = rhs
    s = re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s).replace(" ", "")
    s = re.sub(r"\\frac(\w)(\w)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac(\w)\{", r"\\frac{\1}{", s)
    if s == "0.5":
        return "\\frac{1}{2}"
    m = re.fullmatch(r"(-?(?:0|[1-9]\d*))/(0|[1-9]\d*)", s)
    return rf"\frac{{{m.group(1)}}}{{{m.group(2)}}}" if m else s


# ---------------------------------------------------------------------------------------------
# 2. Symbolic equality with the official restrictions
# ---------------------------------------------------------------------------------------------


def _symbolic_normalise(answer: str) -> str:
    s = unwrap_text(answer).replace("\\left", "").replace("\\right", "")
    s = s.replace("\\%", "").replace("\\$", "").replace("$", "").replace("%", "")
    s = s.replace(" or ", " , ").replace(" and ", " , ")
    s = s.replace("million", "*10^6").replace("billion", "*10^9").replace("trillion", "*10^12")
    s = _TEXT_GROUP_RE.sub(r"\1", _UNITS_RE.sub("", s))  # the official reads LaTeX as plain text here
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\^ *\\circ|\^\{\\circ\}", "", s)
    if s.startswith("{") and s.endswith("}"):
        s = s[1:-1]
    s = re.sub(r",\\! *", "", s)
    if _NUMBER_RE.fullmatch(s.strip()) and float(s).is_integer():
        s = str(int(float(s)))
    s = re.sub(r"- *", "-", s)
    s = re.sub(r"(\d) +(\d)", r"\1+\2", s)  # a mixed number "3 1/2"
    return s.replace(" ", "").lower()


def _split_tuple(s: str) -> list[str]:
    """Elements of a bracketed tuple or interval ("(1,2]" -> ["1", "2"]), else the whole answer."""
    s = _THOUSANDS_RE.sub(r"\1\2", s)
    if len(s) <= 2 or s[0] not in "([" or s[-1] not in ")]":
        return [s]
    depth, start, elements = 0, 1, []
    for i, ch in enumerate(s):
        depth += (ch in "([{") - (ch in ")]}")
        if depth == 0 and i < len(s) - 1:
            return [s]  # "(1)+(2)": the brackets don't enclose the whole answer
        if depth == 1 and ch == ",":
            elements.append(s[start:i])
            start = i + 1
    return [*elements, s[start:-1]]


def _fraction(s: str) -> tuple[int, int] | None:
    m = _FRACTION_RE.fullmatch(s)
    if m is None:
        return None
    sign, num, den = m.group(1), m.group(2) or m.group(4), m.group(3) or m.group(5)
    return (-int(num) if sign else int(num)), int(den)


def _is_integer(s: str) -> bool:
    s = _THOUSANDS_RE.sub(r"\1\2", s)
    return bool(_NUMBER_RE.fullmatch(s)) and float(s).is_integer()


def _elements_equal(ref: str, pred: str) -> bool:
    if ref == pred:
        return True
    ref_fraction, pred_fraction = _fraction(ref), _fraction(pred)
    if ref_fraction and pred_fraction:
        return ref_fraction == pred_fraction  # an unreduced fraction is not its reduced form
    if _is_integer(ref) != _is_integer(pred):
        return False  # an integer reference needs an integer answer, and only an integer one
    try:
        ref_value, pred_value = to_sympy(ref), to_sympy(pred)
        if len(ref_value.free_symbols | pred_value.free_symbols) > 2:
            return False  # the official check gives up on more than two unknowns
        return sympy.simplify(ref_value - pred_value) == 0
    except Exception:  # noqa: BLE001 (Unsupported, or any sympy failure on the expression: not shown equal)
        return False


def symbolic_equal(pred: str, ref: str) -> bool:
    """The official symbolic check: element-wise, order and brackets kept, under the restrictions above."""
    ref, pred = _symbolic_normalise(ref), _symbolic_normalise(pred)
    if ref == pred:
        return True
    if not pred:
        return False
    ref_elements, pred_elements = _split_tuple(ref), _split_tuple(pred)
    if len(ref_elements) > 1 and (ref[0] != pred[0] or ref[-1] != pred[-1]):
        return False
    if len(ref_elements) != len(pred_elements):
        return False
    return all(_elements_equal(r, p) for r, p in zip(ref_elements, pred_elements, strict=True))


def equivalent(pred: str, refs: tuple[str, ...]) -> bool:
    """Whether `pred` is equivalent to any of `refs` under the official rules."""
    normal = mathd_normalise(pred)
    return any(normal == mathd_normalise(ref) or symbolic_equal(pred, ref) for ref in refs)


# ---------------------------------------------------------------------------------------------
# A safe LaTeX -> sympy reader
# ---------------------------------------------------------------------------------------------


def _tokenise(s: str) -> list[str]:
    tokens, i, s = [], 0, s.rstrip()
    while i < len(s):
        m = _TOKEN_RE.match(s, i)
        if m is None:
            raise Unsupported(f"unexpected {s[i : i + 10]!r}")
        i = m.end()
        if m.group(1) not in _SKIPPED:
            tokens.append(m.group(1))
        if len(tokens) > MAX_TOKENS:
            raise Unsupported("answer too long")
    return tokens


def to_sympy(latex: str) -> sympy.Expr:
    """A sympy expression from a small LaTeX subset, built without ever evaluating text as code.

    Raises `Unsupported` for anything outside the subset or over the size limits."""
    reader = _Reader(_tokenise(latex))
    value = reader.expression()
    if reader.peek() is not None:
        raise Unsupported(f"unexpected {reader.peek()!r}")
    return value


class _Reader:
    """Recursive descent: expression = term {(+|-) term}; term = signed {(*|/|implicit) signed};
    signed = {+|-} power; power = atom [^ signed]; atom = number | letter | (expression) | {expression}
    | \\frac group group | \\sqrt [[expression]] group | \\pi | \\infty | \\text group."""

    def __init__(self, tokens: list[str]):
        self.tokens, self.pos, self.depth = tokens, 0, 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise Unsupported(f"expected {expected or 'more'}, found {token!r}")
        self.pos += 1
        return token

    def expression(self) -> sympy.Expr:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise Unsupported("nested too deeply")
        value = self.term()
        while self.peek() in ("+", "-"):
            value = value + self.term() if self.take() == "+" else value - self.term()
        self.depth -= 1
        return value

    def term(self) -> sympy.Expr:
        value = self.signed()
        while True:
            token = self.peek()
            if token in ("*", r"\cdot", r"\times"):
                self.take()
                value = value * self.signed()
            elif token in ("/", r"\div"):
                self.take()
                value = value / self.signed()
            elif token is not None and (token in _ATOM_STARTS or token[0].isalnum() or token[0] == "."):
                value = value * self.power()  # implicit product: 2x, 3\sqrt{13}, 2\pi
            else:
                return value

    def signed(self) -> sympy.Expr:
        if self.peek() in ("+", "-"):
            return -self.signed() if self.take() == "-" else self.signed()
        return self.power()

    def power(self) -> sympy.Expr:
        base = self.atom()
        if self.peek() != "^":
            return base
        self.take()
        exponent = self.signed()
        if (exponent.is_Number and abs(exponent) > MAX_EXPONENT) or (base.is_Number and abs(base) > MAX_BASE):
            raise Unsupported("power too large")
        return base**exponent

    def group(self) -> sympy.Expr:
        """A command's argument: `{expression}`, or a single atom as in `\\sqrt2`."""
        if self.peek() != "{":
            return self.atom()
        self.take("{")
        value = self.expression()
        self.take("}")
        return value

    def atom(self) -> sympy.Expr:
        token = self.take()
        if token[0].isdigit() or token[0] == ".":
            number = Fraction(token)  # exact: 0.5 is 1/2
            return sympy.Rational(number.numerator, number.denominator)
        if len(token) == 1 and token.isalpha():
            return sympy.Symbol(token)
        if token in ("(", "{"):
            value = self.expression()
            self.take(")" if token == "(" else "}")
            return value
        if token in _FRAC_COMMANDS:
            numerator = self.group()
            return numerator / self.group()
        if token == r"\sqrt":
            return self._root()
        if token in _TEXT_COMMANDS:
            return self.group()
        constants = {r"\pi": sympy.pi, r"\infty": sympy.oo}
        if token in constants:
            return constants[token]
        raise Unsupported(f"unsupported {token!r}")

    def _root(self) -> sympy.Expr:
        if self.peek() != "[":
            return sympy.sqrt(self.group())
        self.take("[")
        degree = self.expression()
        self.take("]")
        if not (degree.is_Integer and 2 <= degree <= MAX_EXPONENT):
            raise Unsupported("root degree")
        return sympy.root(self.group(), degree)
