"""The verifier pool: worker processes with per-job deadlines, replaced when they hang or die.

Workers are fresh interpreters running `worker.py` by path (not forks: no copy of the trainer's memory,
no CUDA or NCCL state, safe to start from torchrun/accelerate ranks), talking JSON lines over pipes.
Each completion gets a soft budget (SIGALRM in the worker, which stops any Python-level work) and a
hard one (the trainer kills and replaces a worker that has not answered, e.g. stuck in C code); each
call gets a batch budget. All three count as timeouts and score 0.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import os
import select
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

from real_trl.rewards.worker import verify_bounded

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT = 120.0  # seconds for a fresh worker to import math-verify
WORKER_SCRIPT = Path(__file__).with_name("worker.py")


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # macOS


def default_num_workers() -> int:
    """Cores this process may use, shared among the ranks of this node (REAL_TRL_REWARD_WORKERS overrides)."""
    if "REAL_TRL_REWARD_WORKERS" in os.environ:
        return max(0, int(os.environ["REAL_TRL_REWARD_WORKERS"]))
    ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, min(64, usable_cores() // max(1, ranks_here)))


class _Worker:
    def __init__(self):
        env = dict(os.environ)
        # The worker needs the same imports as we have, and none of our threads or devices.
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER_SCRIPT)],
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

    def send(self, job: int, request: dict, hard: float) -> bool:
        self.job, self.deadline = job, time.monotonic() + hard
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
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
            with contextlib.suppress(OSError):
                pipe.close()
        if self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)


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

    def _dead_start(self) -> None:
        self.failed_starts += 1
        if self.failed_starts > 2 * self.num_workers:
            raise RuntimeError("verifier workers keep failing to start")

    def run(self, jobs, grader: str, timeout: float, batch_timeout: float, counts: dict) -> list:
        """Score `jobs` [(pred, refs)] with `grader`; (score, status) per job, within `batch_timeout` s."""
        results: list = [None] * len(jobs)
        queue = list(range(len(jobs)))
        soft = max(0.05, min(timeout - 0.25, 0.8 * timeout))
        self._wait_ready()
        batch_deadline = time.monotonic() + batch_timeout
        while queue or any(w.job is not None for w in self.workers):
            for w in self.workers:
                while w.ready and w.job is None and queue:
                    i = self._next_job(w, queue, jobs)
                    pred, refs = jobs[i]
                    if not w.send(i, {"grader": grader, "pred": pred, "refs": refs, "soft": soft}, timeout):
                        queue.append(i)  # it died between jobs: retry elsewhere
                        counts["worker_restarts"] += 1
                        self._replace(w)
                        break
            self._collect(results, counts, batch_deadline)
            now = time.monotonic()
            for w in list(self.workers):
                busy = w.job is not None
                if (busy or not w.ready) and (now >= w.deadline or (busy and now >= batch_deadline)):
                    if busy:
                        results[w.job] = (0.0, "timeout")
                    counts["worker_restarts"] += 1
                    self._replace(w)
            if now >= batch_deadline:
                for i in queue:
                    results[i] = (0.0, "timeout")
                break
        return results

    def _collect(self, results: list, counts: dict, batch_deadline: float) -> None:
        """Wait for replies until the nearest deadline; record them, and replace workers that died."""
        waiting = {w.fd: w for w in self.workers if w.job is not None or not w.ready}
        if not waiting:  # every worker died and none could be restarted
            raise RuntimeError("no verifier worker is alive")
        wake = min([batch_deadline] + [w.deadline for w in waiting.values()])
        readable, _, _ = select.select(list(waiting), [], [], max(0.0, wake - time.monotonic()))
        for fd in readable:
            w = waiting[fd]
            replies = w.read_lines()
            if replies is None:  # the worker died (crash, OOM kill, segfault in C)
                if w.job is not None:
                    results[w.job] = (0.0, "timeout")
                elif not w.ready:
                    self._dead_start()
                counts["worker_restarts"] += 1
                self._replace(w)
                continue
            for reply in replies:
                if "ready" in reply:
                    w.ready = True
                elif w.job is not None:
                    results[w.job] = (reply["score"], reply["status"])
                    w.job = None

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
                    self._dead_start()
                    self._replace(w)
                elif any("ready" in r for r in replies):
                    w.ready = True


_POOLS: dict[tuple[int, int], WorkerPool] = {}
_POOL_LOCK = threading.Lock()
_FALLBACK_WARNED = False


def get_pool(num_workers: int) -> WorkerPool | None:
    """The shared pool of this process (a forked child builds its own), or None to score in-process."""
    global _FALLBACK_WARNED
    key = (os.getpid(), num_workers)
    if key not in _POOLS:
        try:
            if os.name != "posix":
                raise OSError("verifier pools need a POSIX system")
            _POOLS[key] = WorkerPool(num_workers)
        except OSError as exc:
            if not _FALLBACK_WARNED:
                warnings.warn(
                    f"math rewards: cannot start verifier processes ({exc}); verifying in-process, where a "
                    "completion stuck in C code cannot be interrupted. Set REAL_TRL_REWARD_WORKERS=0 to "
                    "silence this.",
                    RuntimeWarning,
                    stacklevel=3,
                )
                _FALLBACK_WARNED = True
            return None
    return _POOLS[key]


def verify_all(jobs: list, grader: str, *, num_workers, timeout: float, batch_timeout, counts: dict) -> list:
    """(score, status) for each (pred, refs) job: in the pool when there is one, else in-process.

    `num_workers` None means `default_num_workers()`, 0 in-process; `batch_timeout` None means
    `timeout * ceil(jobs / workers) + 10` seconds."""
    if not jobs:
        return []
    workers = default_num_workers() if num_workers is None else num_workers
    pool = get_pool(workers) if workers > 0 else None
    if pool is not None:
        budget = timeout * math.ceil(len(jobs) / workers) + 10.0 if batch_timeout is None else batch_timeout
        try:
            with _POOL_LOCK:
                return pool.run(jobs, grader, timeout, budget, counts)
        except (RuntimeError, OSError) as exc:
            logger.warning("math rewards: verifier pool failed (%s); verifying in-process", exc)
            pool.close()
            _POOLS.pop((os.getpid(), workers), None)
    if threading.current_thread() is not threading.main_thread():
        logger.warning("math rewards: in-process verification outside the main thread has no time bound")
    return [verify_bounded(grader, pred, refs, timeout) for pred, refs in jobs]


def worker_pids() -> list[int]:
    """Process ids of this process's verifier workers (for benchmarks and monitoring)."""
    return [w.proc.pid for key, pool in _POOLS.items() if key[0] == os.getpid() for w in pool.workers]


@atexit.register
def _close_pools() -> None:
    for key, pool in list(_POOLS.items()):
        if key[0] == os.getpid():
            pool.close()
    _POOLS.clear()
