"""The launcher behind `scripts/train.py`: a recipe and flags in, checks, the run's plan, REALTrainer.

Modules: `recipe` (YAML recipe + flags, every mistake collected), `plan` (batch arithmetic, schedule,
length, precision), `engine` (what accelerate launches, and the precision decision), `preflight`
(optional engines installed), `run_dir` (the run folder) and `launcher` (checks, then training).
`main` loads on first use, so that importing `plan` or `recipe` does not load the trainer.
"""

from __future__ import annotations

__all__ = ["main"]


def __getattr__(name: str):
    if name == "main":
        from real_trl.launch.launcher import main

        return main
    raise AttributeError(f"module 'real_trl.launch' has no attribute {name!r}")
