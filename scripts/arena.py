"""The full CPU arena: every method x learning rate x seed from one cached warm start (see docs/demo.md)."""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from real_trl.arena.settings import METHODS, ArenaConfig
from real_trl.cli import parse

DESCRIPTION = """\
Train REAL, BCE, product-style REAL, GRPO, DAPO and GSPO on a toy arithmetic task from the same cached
warm start, with the same budget, learning-rate sweep and seeds, and write arena.md (table), arena.json
(every curve, rewritten after each run so an interrupted arena keeps what it finished) and arena.png
into --output_dir. Halves run side by side (e.g. --methods real bce real_product --output_dir outputs/a,
and the rest into outputs/b) are joined with --merge outputs/a outputs/b. The committed record is
results/arena/; write there only on purpose (--output_dir results/arena)."""

_DEFAULTS = ArenaConfig()


@dataclass
class ArenaArguments:
    methods: list[str] = field(default_factory=lambda: list(_DEFAULTS.methods), metadata={"help": "methods to run"})
    seeds: list[int] = field(default_factory=lambda: list(_DEFAULTS.seeds), metadata={"help": "RL seeds"})
    learning_rates: list[float] = field(
        default_factory=lambda: list(_DEFAULTS.learning_rates), metadata={"help": "the sweep, for every method"}
    )
    max_steps: int = field(default=_DEFAULTS.max_steps, metadata={"help": "RL optimizer steps per run"})
    eval_every: int = field(default=_DEFAULTS.eval_every, metadata={"help": "steps between held-out evaluations"})
    output_dir: str = field(default="outputs/arena", metadata={"help": "folder for arena.{md,json,png}"})
    cache_dir: str | None = field(
        default=None,
        metadata={"help": "warm-start cache; when unset, $REAL_TRL_CACHE/arena or ~/.cache/real-trl/arena"},
    )
    merge: list[str] | None = field(
        default=None, metadata={"help": "instead of running, join the arena.json files of these output folders"}
    )

    def __post_init__(self):
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
        missing = [d for d in self.merge or [] if not (Path(d) / "arena.json").is_file()]
        if missing:
            raise ValueError(f"no arena.json in {', '.join(missing)}; pass the --output_dir of each finished part")


def main(argv: list[str] | None = None) -> None:
    """Run (or merge) the arena as the command line asks; print the table."""
    (args,) = parse([ArenaArguments], DESCRIPTION, argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # torch loads only now, so --help and argument mistakes answer at once
    from real_trl.arena.report import merge_results, write_results
    from real_trl.arena.runs import run_arena

    if args.merge:
        parts = [json.loads((Path(d) / "arena.json").read_text()) for d in args.merge]
        paths = write_results(merge_results(parts), args.output_dir)
        print(paths["table"].read_text())
        return
    cfg = ArenaConfig(
        methods=tuple(args.methods),
        seeds=tuple(args.seeds),
        learning_rates=tuple(args.learning_rates),
        max_steps=args.max_steps,
        eval_every=args.eval_every,
    )
    partial = Path(args.output_dir) / "arena.json"
    partial.parent.mkdir(parents=True, exist_ok=True)
    results = run_arena(cfg, cache_dir=args.cache_dir, on_run=lambda r: partial.write_text(json.dumps(r, indent=1)))
    paths = write_results(results, args.output_dir)
    print(paths["table"].read_text())
    print(f"Wrote {', '.join(str(p) for p in paths.values())}")


if __name__ == "__main__":
    main()
