"""The verifier worker: scores (answer, references) pairs under a soft time budget.

Started by the pool as a fresh interpreter running this file by path (`python real_trl/rewards/worker.py`):
it imports only the standard library, math-verify and sympy (no torch, no CUDA, no copy of the trainer's
memory), reads one JSON request per line on stdin and writes one JSON reply per line. Imported from the
package instead, it scores in-process (the fallback when processes can't be started).

Two graders:
- "math_verify" (`math_reward`): both sides re-boxed and parsed by math-verify's LaTeX extraction
  (ANTLR grammar -> sympy objects), compared by `math_verify.verify`. Its expression path
  (`ExprExtractionConfig`, which runs sympy's `parse_expr`, an `eval`) is never used, and its own
  signal-based timeouts are off: ours cover the whole completion.
- "paper" (`paper_math_reward`): `paper_grader.equivalent`, the official release's rules.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import signal
import sys
import threading
import warnings

if __package__:
    from real_trl.rewards import paper_grader
else:  # run by path: this folder is sys.path[0]; importing the package would import torch
    import paper_grader

_DOLLAR_RE = re.compile(r"(?<!\\)\$")
# "4.5e33" (Minerva writes references so): in LaTeX that would read 4.5 * e * 33
_SCI_RE = re.compile(r"(?<![\w\\.])(\d+(?:\.\d+)?)[eE]([+-]?\d+)(?![\w.])")


class _SoftTimeout(BaseException):
    """Raised by SIGALRM; a BaseException so that the graders' `except Exception` can't swallow it."""


def _on_alarm(signum, frame):
    raise _SoftTimeout()


@functools.lru_cache(maxsize=1)
def _math_verify():
    # Imported lazily: the trainer process never needs it when workers do the verifying.
    from math_verify import LatexExtractionConfig, parse, verify

    # Our timeouts replace math-verify's, so its "timeout is disabled" notice is noise.
    for name in ("math_verify", "math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return parse, verify, [LatexExtractionConfig(boxed_match_priority=0)]


def _parse_latex(answer: str) -> list:
    # Both sides go through the same door: the bare answer re-boxed, math delimiters dropped
    # (OlympiadBench references look like "$\frac{1}{2}$" or "$69$,$84$"), LaTeX extraction only.
    parse, _, config = _math_verify()
    answer = _SCI_RE.sub(r"\1 \\times 10^{\2}", _DOLLAR_RE.sub("", answer))
    return parse("\\boxed{" + answer + "}", extraction_config=config, parsing_timeout=None)


@functools.lru_cache(maxsize=4096)
def _parse_reference(ref: str) -> tuple:
    return tuple(_parse_latex(ref))


def _math_verify_score(pred: str, refs: tuple[str, ...]) -> tuple[float | None, str]:
    golds = [g for ref in refs for g in _parse_reference(ref)]
    if not golds:
        return None, "bad_ref"
    _, verify, _ = _math_verify()
    # math-verify reads `\text{5}` as a word, not the number: try the answer unwrapped as well
    for candidate in dict.fromkeys((pred, paper_grader.unwrap_text(pred))):
        target = _parse_latex(candidate)
        if target and verify(golds, target, timeout_seconds=None):
            return 1.0, "ok"
    return 0.0, "ok"


def verify(grader: str, pred: str, refs: tuple[str, ...]) -> tuple[float | None, str]:
    """(score, status) of answer `pred` against the acceptable `refs`, unbounded in time."""
    if grader == "paper":
        return float(paper_grader.equivalent(pred, refs)), "ok"
    return _math_verify_score(pred, refs)


def verify_bounded(grader: str, pred: str, refs: tuple[str, ...], seconds: float | None) -> tuple[float | None, str]:
    """`verify` under a SIGALRM budget (possible only in a main thread; elsewhere it is unbounded).

    Status is "ok", "bad_ref" (the reference can't be parsed), "timeout" or "error"; the last two score 0."""
    bounded = (
        seconds is not None
        and hasattr(signal, "setitimer")  # not on Windows
        and threading.current_thread() is threading.main_thread()
    )
    previous = signal.signal(signal.SIGALRM, _on_alarm) if bounded else None
    try:
        try:
            if bounded:
                signal.setitimer(signal.ITIMER_REAL, seconds)
            return verify(grader, pred, refs)
        finally:
            if bounded:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
    except _SoftTimeout:
        return 0.0, "timeout"
    except Exception:  # noqa: BLE001 (RecursionError on deep nesting, MemoryError, a parser bug: not a match)
        return 0.0, "error"


def main() -> None:
    """Verifier loop: one JSON request per line on stdin, one JSON reply per line on the protocol fd."""
    # Anything a library prints goes to stderr, so that stdout carries only our replies.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    warnings.simplefilter("ignore")  # sympy's deprecation notices would land in the trainer's log
    _math_verify()
    out.write(b'{"ready": 1}\n')
    for line in sys.stdin.buffer:
        req = json.loads(line)
        score, status = verify_bounded(req["grader"], req["pred"], tuple(req["refs"]), req["soft"])
        out.write(json.dumps({"score": score, "status": status}).encode() + b"\n")


if __name__ == "__main__":
    main()
