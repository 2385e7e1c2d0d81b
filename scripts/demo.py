"""The CPU demo (`make demo`): REAL trains a tiny model on verifiable arithmetic in under ten minutes.

Warm-starts a tiny Qwen2 (cached after the first run), trains it with REALTrainer and the math
reward, and prints held-out accuracy before and after. See docs/demo.md for what it does and does not show.

    python scripts/demo.py [--steps 200] [--output-dir outputs/demo]
"""

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from real_trl.arena import demo_config, run_arena, write_results  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None, help="RL optimizer steps (default: demo_config's)")
    parser.add_argument("--output-dir", default="outputs/demo", help="where the table, JSON and figure go")
    parser.add_argument("--cache-dir", default=None, help="warm-start cache (default ~/.cache/real-trl/arena)")
    args = parser.parse_args()

    cfg = demo_config(**({"max_steps": args.steps} if args.steps else {}))
    start = time.time()
    results = run_arena(cfg, cache_dir=args.cache_dir)
    paths = write_results(results, args.output_dir)
    run = results["runs"][0]
    before, after = results["warm_start"], run["eval"]
    print(f"\nREAL, {cfg.max_steps} steps, {cfg.num_heldout} held-out problems never seen in training:")
    sampled = f"held-out Pass@1 (sampled at T={cfg.temperature:g}):"
    print(f"  {sampled:<36} {before['sampled']:.3f} -> {after['sampled'][-1]:.3f}")
    print(f"  {'held-out accuracy (greedy):':<36} {before['greedy']:.3f} -> {after['greedy'][-1]:.3f}")
    print(f"  wall time {time.time() - start:.0f} s; table, curves and figure in {paths['table'].parent}/")


if __name__ == "__main__":
    main()
