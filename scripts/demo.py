"""The CPU demo (`make demo`): REAL trains a tiny model on verifiable arithmetic in a few minutes."""

import os
import time
from dataclasses import dataclass, field

from real_trl.arena.settings import demo_config
from real_trl.cli import parse

DESCRIPTION = """\
Warm-start a tiny Qwen2 on arithmetic (cached after the first run), train it with REALTrainer and the
math reward, and print held-out accuracy before and after; the table, every curve and a figure go to
--output_dir. See docs/demo.md for what it does and does not show."""


@dataclass
class DemoArguments:
    max_steps: int = field(default=demo_config().max_steps, metadata={"help": "RL optimizer steps"})
    output_dir: str = field(default="outputs/demo", metadata={"help": "folder for arena.{md,json,png}"})
    cache_dir: str | None = field(
        default=None,
        metadata={"help": "warm-start cache; when unset, $REAL_TRL_CACHE/arena or ~/.cache/real-trl/arena"},
    )

    def __post_init__(self):
        if self.max_steps < 1:
            raise ValueError(f"--max_steps must be at least 1, got {self.max_steps}")


def main(argv: list[str] | None = None) -> dict:
    """Run the demo as the command line asks, print before/after and return the arena result."""
    (args,) = parse([DemoArguments], DESCRIPTION, argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # torch loads only now, so --help and argument mistakes answer at once
    from real_trl.arena.report import write_results
    from real_trl.arena.runs import run_arena

    cfg = demo_config(max_steps=args.max_steps)
    start = time.time()
    results = run_arena(cfg, cache_dir=args.cache_dir)
    paths = write_results(results, args.output_dir)
    print(f"\nREAL, {cfg.max_steps} steps, {cfg.num_heldout} held-out problems never seen in training:")
    for line in before_and_after(results, cfg.temperature):
        print(f"  {line}")
    print(
        "  The figures differ from CPU to CPU (SIMD kernels change float sums); the directions are what to check:\n"
        "  both habits the warm start was taught drop, and held-out accuracy rises."
    )
    print(f"  wall time {time.time() - start:.0f} s; table, curves and figure in {paths['table'].parent}/")
    return results


def before_and_after(results: dict, temperature: float) -> list[str]:
    """One line per measure: warm start -> after RL, and whether it moved the way RL should move it."""
    before, after = results["warm_start"], results["runs"][0]["eval"]
    measures = [  # (label, key, RL should raise it)
        (f"sampled answers without \\boxed{{}} (T={temperature:g})", "unboxed", False),
        (f"sampled answers off by one (T={temperature:g})", "off_by_one", False),
        (f"held-out Pass@1 (sampled at T={temperature:g})", "sampled", True),
        ("held-out accuracy (greedy)", "greedy", True),
    ]
    lines = []
    for label, key, should_rise in measures:
        start, end = before[key], after[key][-1]
        moved = end > start if should_rise else end < start
        verdict = (
            ("rose" if should_rise else "dropped") if moved else ("did not rise" if should_rise else "did not drop")
        )
        lines.append(f"{label + ':':<46} {start:.3f} -> {end:.3f}  {verdict}")
    return lines


if __name__ == "__main__":
    main()
