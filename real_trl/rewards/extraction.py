"""Answer extraction: pure string work, shared by the trainer side of every reward and by data loading.

Nothing here parses mathematics; it cuts the final answer out of a completion and normalises the
reference column, so that only a short, bounded string ever reaches a verifier.
"""

from __future__ import annotations

import math
import re

THINK_CLOSE = "</think>"
MAX_ANSWER_CHARS = 1000  # a boxed answer longer than this is not an answer (and is never parsed)

_BOX_OR_FBOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_BOX_RE = re.compile(r"\\boxed(?![A-Za-z])")
_BARE_RE = re.compile(r"[^\s$]+")


def completion_text(completion) -> str:
    """The text of a completion: a plain string, or TRL's conversational form (the last message)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if not isinstance(completion, (list, tuple)) or not all(isinstance(m, dict) for m in completion):
        raise TypeError(
            "a completion must be a string or a list of chat messages [{'role': 'assistant', 'content': ...}], "
            f"got {type(completion).__name__}"
        )
    if not completion:
        return ""
    content = completion[-1].get("content", "")
    if isinstance(content, list):  # content blocks: [{"type": "text", "text": ...}, ...]
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else str(content)


def _braced(text: str, i: int, max_chars: int) -> tuple[str | None, bool]:
    """Content of the brace group opening at `text[i]`, and whether it was given up for being too long."""
    depth, j, end = 0, i, min(len(text), i + max_chars + 2)
    while j < end:
        ch = text[j]
        if ch == "\\":  # `\{` and `\}` are literal braces, not grouping
            j += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j], False
        j += 1
    return None, end - i > max_chars  # unbalanced: truncated output, or too long to be an answer


def _last_box(text: str, command: re.Pattern, max_chars: int, allow_bare: bool) -> str | None:
    """Content of the last box command in `text`; `allow_bare` also reads the `\\boxed 5` form."""
    matches = list(command.finditer(text))
    if not matches:
        return None
    i = matches[-1].end()
    while i < len(text) and text[i] in " \t":
        i += 1
    if i < len(text) and text[i] == "{":
        content, _ = _braced(text, i, max_chars)
    elif allow_bare:
        m = _BARE_RE.match(text[i : i + max_chars + 1])
        content = m.group().rstrip(".") if m is not None and len(m.group()) <= max_chars else None
    else:
        return None
    content = (content or "").strip().strip("$").strip()
    return content or None


def extract_answer(text, require_think: bool = True, max_chars: int = MAX_ANSWER_CHARS) -> str | None:
    """The answer `math_reward` grades: the last `\\boxed{...}` after the last `</think>`.

    `\\fbox{...}` and `\\boxed 5` count too. With `require_think` (R1-distilled models) a completion
    with no `</think>` has no answer; without it the whole text is searched. Returns None when there is
    no (non-empty, balanced, at most `max_chars` long) answer.
    """
    text = completion_text(text)
    _, sep, tail = text.rpartition(THINK_CLOSE)
    if not sep and require_think:
        return None
    return _last_box(tail, _BOX_OR_FBOX_RE, max_chars, allow_bare=True)


def extract_paper_answer(text, require_think: bool = True, max_chars: int = MAX_ANSWER_CHARS) -> str | None:
    """The answer the official release grades: the last `\\boxed{...}` between the first `</think>` and
    any next one. Only the braced `\\boxed{...}` counts (`\\fbox{...}` and `\\boxed 5` do not)."""
    text = completion_text(text)
    parts = text.split(THINK_CLOSE)
    if len(parts) == 1 and require_think:
        return None
    return _last_box(parts[1] if len(parts) > 1 else text, _BOX_RE, max_chars, allow_bare=False)


def reference_answers(answer) -> tuple[str, ...] | None:
    """The acceptable answers of a reference: a string, a number (142.0 -> "142") or a list of them."""
    if answer is None:
        return None
    if hasattr(answer, "tolist") and not isinstance(answer, str):  # numpy arrays and scalars
        answer = answer.tolist()
    if isinstance(answer, (list, tuple)):
        refs = tuple(r for a in answer for r in (reference_answers(a) or ()))
        return refs or None
    if isinstance(answer, bool):
        answer = str(answer)
    if isinstance(answer, float):
        if not math.isfinite(answer):
            return None
        answer = str(int(answer)) if answer.is_integer() else repr(answer)
    answer = str(answer).strip()
    return (answer,) if answer else None
