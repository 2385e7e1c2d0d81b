"""Math rewards on math-verify: the paper's verifier, run in parallel under a hard time budget.

A completion earns 1.0 when the last `\\boxed{...}` after its closing `</think>` is equivalent, by
math-verify, to the reference answer, else 0.0 (None only when the reference itself can't be parsed).

How a batch is scored:

1. In the trainer process, cheaply: take the text after the last `</think>`, cut out the last
   `\\boxed{...}` / `\\fbox{...}` / `\\boxed 5` (at most `max_answer_chars` characters are scanned: a
   longer "answer" scores 0 and never reaches a parser), normalise the reference (str, number or list
   of acceptable answers), answer pure integers on both sides directly, and merge duplicate pairs.
2. The rest goes to a pool of verifier processes (plain `python rewards.py` interpreters that import
   only math-verify: no torch, no CUDA, no copy of the trainer's memory, and safe to start from
   torchrun/accelerate ranks). Each completion gets a soft budget (SIGALRM in the worker, which
   stops any Python-level work) and a hard one (the trainer kills and replaces a worker that has
   not answered, e.g. stuck in C code). Both count as timeouts; the completion scores 0.
3. Counters (timeouts, worker restarts, unparseable references, missing answers) go to the trainer
   log through TRL's `log_metric` hook as `math_reward/<name>` (per-batch counts).

Safety: model text only ever reaches math-verify's LaTeX path (ANTLR grammar -> sympy objects).
math-verify's expression path (`ExprExtractionConfig`), which runs sympy's `parse_expr` (an `eval`),
is never used here, and math-verify's own signal-based timeouts are off (ours cover the whole
completion, and its per-sample "Timeout during parsing: <text>" warnings never fire).

Running this file as a script starts a verifier worker (stdin/stdout JSON lines); it is not a CLI.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import math
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

THINK_CLOSE = "</think>"
MAX_ANSWER_CHARS = 1000  # a boxed answer longer than this is not an answer (and is never parsed)
DEFAULT_TIMEOUT = 3.0  # seconds per completion, hard; real answers verify in milliseconds
STARTUP_TIMEOUT = 120.0  # seconds for a fresh worker to import math-verify
METRICS = ("timeouts", "worker_restarts", "unparseable_refs", "no_answer")

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_INT_RE = re.compile(r"-?\d{1,40}")
_DOLLAR_RE = re.compile(r"(?<!\\)\$")
# "4.5e33" (Minerva writes references so): in LaTeX that would read 4.5 * e * 33
_SCI_RE = re.compile(r"(?<![\w\\.])(\d+(?:\.\d+)?)[eE]([+-]?\d+)(?![\w.])")


# ---------------------------------------------------------------------------------------------
# Extraction (trainer side, pure string work)
# ---------------------------------------------------------------------------------------------


def completion_text(completion) -> str:
    """The text of a completion: a plain string, or TRL's conversational form (the last message)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if not completion:
        return ""
    content = completion[-1].get("content", "")
    if isinstance(content, list):  # content blocks: [{"type": "text", "text": ...}, ...]
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else str(content)


def _boxed_content(text: str, max_chars: int) -> tuple[str | None, bool]:
    """Content of the last `\\boxed`/`\\fbox` in `text`, and whether it was cut for being too long."""
    matches = list(_BOX_RE.finditer(text))
    if not matches:
        return None, False
    i = matches[-1].end()
    while i < len(text) and text[i] in " \t":
        i += 1
    if i < len(text) and text[i] == "{":
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
    # `\boxed 5` form: one run of non-space characters
    m = re.match(r"[^\s$]+", text[i : i + max_chars + 1])
    if m is None:
        return None, False
    return (None, True) if len(m.group()) > max_chars else (m.group().rstrip("."), False)


def _extract(text: str, require_think: bool, max_chars: int) -> tuple[str | None, str]:
    cut = text.rfind(THINK_CLOSE)
    if cut >= 0:
        text = text[cut + len(THINK_CLOSE) :]
    elif require_think:
        return None, "no_think"
    content, too_long = _boxed_content(text, max_chars)
    if too_long:
        return None, "too_long"
    if content is None:
        return None, "no_box"
    content = content.strip().strip("$").strip()
    return (content, "ok") if content else (None, "no_box")


def extract_answer(text: str, require_think: bool = True, max_chars: int = MAX_ANSWER_CHARS) -> str | None:
    """The final answer of a completion: the last `\\boxed{...}` after the last `</think>`.

    With `require_think` (R1-distilled models) a completion with no `</think>` has no answer; without
    it the whole text is searched. Returns None when there is no (non-empty, not oversized) answer.
    """
    return _extract(completion_text(text), require_think, max_chars)[0]


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


def think_format_reward(completions, **kwargs) -> list[float]:
    """1.0 when a completion closes its reasoning exactly once and then gives a boxed answer.

    The R1 chat template opens `<think>` in the prompt, so the opening tag is optional; a second
    `</think>` or a `<think>` after the closing one fails. Off in the paper's recipes.
    """
    rewards = []
    for completion in completions:
        text = completion_text(completion)
        head, sep, tail = text.partition(THINK_CLOSE)
        ok = bool(sep) and THINK_CLOSE not in tail and "<think>" not in tail and head.count("<think>") <= 1
        rewards.append(1.0 if ok and _extract(text, True, MAX_ANSWER_CHARS)[0] is not None else 0.0)
    return rewards


# ---------------------------------------------------------------------------------------------
# Verification (worker side: math-verify, bounded by SIGALRM)
# ---------------------------------------------------------------------------------------------


class _SoftTimeout(BaseException):
    """Raised by SIGALRM; a BaseException so that math-verify's `except Exception` can't swallow it."""


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


def _verify(pred: str, refs: tuple[str, ...]) -> tuple[float | None, str]:
    golds = [g for ref in refs for g in _parse_reference(ref)]
    if not golds:
        return None, "bad_ref"
    target = _parse_latex(pred)
    if not target:
        return 0.0, "ok"
    _, verify, _ = _math_verify()
    return float(verify(golds, target, timeout_seconds=None)), "ok"


def _verify_bounded(pred: str, refs: tuple[str, ...], seconds: float | None) -> tuple[float | None, str]:
    """`_verify` under a SIGALRM budget (possible only in a main thread; elsewhere it is unbounded)."""
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
            return _verify(pred, refs)
        finally:
            if bounded:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
    except _SoftTimeout:
        return 0.0, "timeout"
    except Exception:  # RecursionError on deep nesting, MemoryError, a parser bug: not a match
        return 0.0, "error"


def _worker_main() -> None:
    """Verifier loop: one JSON request per line on stdin, one JSON reply per line on the protocol fd."""
    # Anything a library prints goes to stderr, so that stdout carries only our replies.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    warnings.simplefilter("ignore")  # sympy's deprecation notices would land in the trainer's log
    _math_verify()
    out.write(b'{"ready": 1}\n')
    for line in sys.stdin.buffer:
        req = json.loads(line)
        score, status = _verify_bounded(req["pred"], tuple(req["refs"]), req["soft"])
        out.write(json.dumps({"score": score, "status": status}).encode() + b"\n")


# ---------------------------------------------------------------------------------------------
# Worker pool (trainer side)
# ---------------------------------------------------------------------------------------------


def default_num_workers() -> int:
    """Cores this process may use, shared among the ranks of this node (REAL_TRL_REWARD_WORKERS overrides)."""
    if "REAL_TRL_REWARD_WORKERS" in os.environ:
        return max(0, int(os.environ["REAL_TRL_REWARD_WORKERS"]))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        cores = os.cpu_count() or 1
    ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, min(64, cores // max(1, ranks_here)))


class _Worker:
    def __init__(self):
        env = dict(os.environ)
        # The worker needs the same imports as we have, and none of our threads or devices.
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
        script = os.path.abspath(__file__)
        self.proc = subprocess.Popen(
            # -P: don't put real_trl/ (whose module names are generic) first on the worker's path.
            [sys.executable, "-P", script] if sys.version_info >= (3, 11) else [sys.executable, script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,  # a Ctrl-C on the trainer must not kill workers mid-reply
        )
        self.fd = self.proc.stdout.fileno()
        self.buffer = b""
        self.ready = False
        self.job: int | None = None
        self.deadline = time.monotonic() + STARTUP_TIMEOUT
        self.refs_seen: set = set()  # references this worker has parsed (and cached)

    def send(self, job: int, pred: str, refs: tuple[str, ...], soft: float, hard: float) -> bool:
        self.job, self.deadline = job, time.monotonic() + hard
        try:
            self.proc.stdin.write(json.dumps({"pred": pred, "refs": refs, "soft": soft}).encode() + b"\n")
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            return False

    def read_lines(self) -> list[dict] | None:
        """Complete replies now available, or None when the worker has exited."""
        chunk = os.read(self.fd, 1 << 16)
        if not chunk:
            return None
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        return [json.loads(line) for line in lines if line]

    def kill(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


class WorkerPool:
    """Verifier processes with per-job hard deadlines; a worker that overruns is killed and replaced."""

    def __init__(self, num_workers: int):
        self.num_workers = num_workers
        self.workers = [_Worker() for _ in range(num_workers)]
        self.failed_starts = 0

    def close(self) -> None:
        for w in self.workers:
            w.kill()
        self.workers = []

    def _replace(self, w: _Worker) -> None:
        w.kill()
        self.workers[self.workers.index(w)] = _Worker()

    def run(self, jobs, timeout: float, batch_timeout: float, counts: dict) -> list[tuple[float | None, str]]:
        """Score `jobs` [(pred, refs)]; returns (score, status) per job, within `batch_timeout` seconds."""
        results: list = [None] * len(jobs)
        queue = list(range(len(jobs)))
        soft = max(0.05, min(timeout - 0.25, 0.8 * timeout))
        self._wait_ready()
        batch_deadline = time.monotonic() + batch_timeout
        while queue or any(w.job is not None for w in self.workers):
            for w in self.workers:
                while w.ready and w.job is None and queue:
                    i = self._next_job(w, queue, jobs)
                    if not w.send(i, *jobs[i], soft, timeout):  # it died between jobs: retry elsewhere
                        queue.append(i)
                        counts["worker_restarts"] += 1
                        self._replace(w)
                        break
            waiting = {w.fd: w for w in self.workers if w.job is not None or not w.ready}
            now = time.monotonic()
            if not waiting:  # every worker died and none could be restarted
                raise RuntimeError("no verifier worker is alive")
            wake = min([batch_deadline] + [w.deadline for w in waiting.values()])
            readable, _, _ = select.select(list(waiting), [], [], max(0.0, wake - now))
            for fd in readable:
                w = waiting[fd]
                replies = w.read_lines()
                if replies is None:  # the worker died (crash, OOM kill, segfault in C)
                    if w.job is not None:
                        results[w.job] = (0.0, "timeout")
                    elif not w.ready:
                        self.failed_starts += 1
                        if self.failed_starts > 2 * self.num_workers:
                            raise RuntimeError("verifier workers keep failing to start")
                    counts["worker_restarts"] += 1
                    self._replace(w)
                    continue
                for reply in replies:
                    if "ready" in reply:
                        w.ready = True
                    elif w.job is not None:
                        results[w.job] = (reply["score"], reply["status"])
                        w.job = None
            now = time.monotonic()
            for w in list(self.workers):
                busy = w.job is not None
                if (busy or not w.ready) and (now >= w.deadline or (busy and now >= batch_deadline)):
                    if w.job is not None:
                        results[w.job] = (0.0, "timeout")
                    counts["worker_restarts"] += 1
                    self._replace(w)
            if now >= batch_deadline:
                for i in queue:
                    results[i] = (0.0, "timeout")
                break
        return results

    @staticmethod
    def _next_job(w: _Worker, queue: list, jobs) -> int:
        """Prefer a job whose reference this worker has already parsed: a group's 8 completions share one."""
        pick = next((k for k in range(min(len(queue), 64)) if jobs[queue[k]][1] in w.refs_seen), 0)
        i = queue.pop(pick)
        if len(w.refs_seen) > 4096:
            w.refs_seen.clear()
        w.refs_seen.add(jobs[i][1])
        return i

    def _wait_ready(self) -> None:
        """Block until at least one worker can take a job (a no-op once the pool is warm)."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not any(w.ready for w in self.workers):
            starting = {w.fd: w for w in self.workers}
            readable, _, _ = select.select(list(starting), [], [], max(0.0, deadline - time.monotonic()))
            if not readable:
                raise RuntimeError(f"no verifier worker started within {STARTUP_TIMEOUT:.0f} s")
            for fd in readable:
                w = starting[fd]
                replies = w.read_lines()
                if replies is None:
                    self.failed_starts += 1
                    if self.failed_starts > 2 * self.num_workers:
                        raise RuntimeError("verifier workers keep failing to start")
                    self._replace(w)
                elif any("ready" in r for r in replies):
                    w.ready = True


_POOLS: dict[tuple[int, int], WorkerPool] = {}
_POOL_LOCK = threading.Lock()
_FALLBACK_WARNED = False


def _get_pool(num_workers: int) -> WorkerPool | None:
    """The shared pool of this process (a forked child builds its own), or None to score in-process."""
    global _FALLBACK_WARNED
    if num_workers <= 0:
        return None
    key = (os.getpid(), num_workers)
    if key not in _POOLS:
        try:
            if os.name != "posix":
                raise OSError("verifier pools need a POSIX system")
            _POOLS[key] = WorkerPool(num_workers)
        except OSError as exc:
            if not _FALLBACK_WARNED:
                warnings.warn(
                    f"math_reward: cannot start verifier processes ({exc}); verifying in-process, where a "
                    "completion stuck in C code cannot be interrupted. Set REAL_TRL_REWARD_WORKERS=0 to "
                    "silence this.",
                    RuntimeWarning,
                    stacklevel=3,
                )
                _FALLBACK_WARNED = True
            return None
    return _POOLS[key]


def worker_pids() -> list[int]:
    """Process ids of this process's verifier workers (for benchmarks and monitoring)."""
    return [w.proc.pid for key, pool in _POOLS.items() if key[0] == os.getpid() for w in pool.workers]


@atexit.register
def _close_pools() -> None:
    for key, pool in list(_POOLS.items()):
        if key[0] == os.getpid():
            pool.close()
    _POOLS.clear()


# ---------------------------------------------------------------------------------------------
# The reward function
# ---------------------------------------------------------------------------------------------


@dataclass
class MathReward:
    """A TRL reward function: 1.0 when the final boxed answer is equivalent to `answer`, else 0.0.

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

    def __call__(self, completions, answer=None, log_metric=None, **kwargs) -> list[float | None]:
        if answer is None:
            raise ValueError(
                "math_reward needs the reference answers as an 'answer' dataset column; load the data "
                "with real_trl.data.load_named_dataset or rename your answer column to 'answer'."
            )
        if len(answer) != len(completions):
            raise ValueError(f"math_reward got {len(completions)} completions but {len(answer)} answers")
        counts = dict.fromkeys(METRICS, 0)
        scores: list[float | None] = [0.0] * len(completions)
        jobs: dict[tuple[str, tuple[str, ...]], list[int]] = {}  # identical pairs are verified once
        for i, (completion, ref) in enumerate(zip(completions, answer)):
            refs = reference_answers(ref)
            if refs is None:
                scores[i] = None
                counts["unparseable_refs"] += 1
                continue
            pred, _ = _extract(completion_text(completion), self.require_think, self.max_answer_chars)
            if pred is None:
                counts["no_answer"] += 1
            elif _INT_RE.fullmatch(pred) and all(_INT_RE.fullmatch(r) for r in refs):
                scores[i] = float(any(int(pred) == int(r) for r in refs))  # what math-verify would say
            else:
                jobs.setdefault((pred, refs), []).append(i)

        for (score, status), indices in zip(self._verify_all(list(jobs), counts), jobs.values()):
            for i in indices:
                scores[i] = score
                counts["timeouts"] += status == "timeout"
                counts["unparseable_refs"] += status == "bad_ref"

        for name, value in counts.items():
            self.totals[name] += value
            if log_metric is not None:
                log_metric(f"{self.__name__}/{name}", float(value))
        return scores

    def _verify_all(self, jobs: list, counts: dict) -> list[tuple[float | None, str]]:
        if not jobs:
            return []
        workers = default_num_workers() if self.num_workers is None else self.num_workers
        pool = _get_pool(workers) if workers > 0 else None
        if pool is not None:
            budget = self.batch_timeout
            if budget is None:
                budget = self.timeout * math.ceil(len(jobs) / workers) + 10.0
            try:
                with _POOL_LOCK:
                    return pool.run(jobs, self.timeout, budget, counts)
            except (RuntimeError, OSError) as exc:
                logger.warning("math_reward: verifier pool failed (%s); verifying in-process", exc)
                pool.close()
                _POOLS.pop((os.getpid(), workers), None)
        if threading.current_thread() is not threading.main_thread():
            logger.warning("math_reward: in-process verification outside the main thread has no time bound")
        return [_verify_bounded(pred, refs, self.timeout) for pred, refs in jobs]


def make_math_reward(require_think: bool = True, **options) -> MathReward:
    """A `math_reward` with other options (see `MathReward`); its `__name__` stays "math_reward"."""
    return MathReward(require_think=require_think, **options)


_DEFAULT_REWARD = MathReward()


def math_reward(completions, answer=None, **kwargs) -> list[float | None]:
    """The paper's reward: 1.0 if the last boxed answer after `</think>` matches `answer`, else 0.0.

    A TRL reward function (`reward_funcs=[math_reward]`); `answer` is the dataset column of that name.
    Returns None for a completion whose reference can't be parsed.
    """
    return _DEFAULT_REWARD(completions, answer, **kwargs)


if __name__ == "__main__":
    # Python < 3.11 has no -P: drop real_trl/ (generic module names) from the worker's import path.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
    _worker_main()
