"""The full CPU arena: REAL, BCE, product-style REAL, GRPO, DAPO and GSPO from the same warm start,
same budget, same learning-rate sweep, several seeds. Writes results/arena/arena.{md,json,png}.

    python scripts/arena.py [--methods real,grpo] [--seeds 0,1,2] [--learning-rates 3e-5,1e-4] [--max-steps 200]

The JSON is rewritten after every run, so an interrupted arena keeps what it finished. Halves run
side by side (e.g. `--methods real,bce,real_product --output-dir outputs/a` and the rest into
outputs/b) are joined with `python scripts/arena.py --merge outputs/a outputs/b`.
"""

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from real_trl.arena import METHODS, ArenaConfig, merge_results, run_arena, write_results  # noqa: E402


def _list(cast):
    return lambda text: tuple(cast(x) for x in text.split(",") if x)


def main() -> None:
    defaults = ArenaConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", type=_list(str), default=defaults.methods, help=f"from {','.join(METHODS)}")
    parser.add_argument("--seeds", type=_list(int), default=defaults.seeds)
    parser.add_argument("--learning-rates", type=_list(float), default=defaults.learning_rates)
    parser.add_argument("--max-steps", type=int, default=defaults.max_steps)
    parser.add_argument("--eval-every", type=int, default=defaults.eval_every)
    parser.add_argument("--output-dir", default="results/arena")
    parser.add_argument("--cache-dir", default=None, help="warm-start cache (default ~/.cache/real-trl/arena)")
    parser.add_argument(
        "--merge", nargs="+", metavar="DIR", help="instead of running, join the arena.json files of these output dirs"
    )
    args = parser.parse_args()
    if args.merge:
        parts = [json.loads((Path(d) / "arena.json").read_text()) for d in args.merge]
        paths = write_results(merge_results(parts), args.output_dir)
        print(paths["table"].read_text())
        return
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")

    cfg = ArenaConfig(
        methods=args.methods,
        seeds=args.seeds,
        learning_rates=args.learning_rates,
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
