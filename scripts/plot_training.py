"""Figures: training dynamics of runs overlaid (paper Figure 4) and/or gradient magnitudes (paper Figure 3).

    python scripts/plot_training.py --run REAL=outputs/real --run GRPO=outputs/grpo --output figures/dynamics.png
    python scripts/plot_training.py --gradients figures/gradients.png --tau 0.5 --epsilon 0.2

A run is an output directory (its trainer_state.json, or its latest checkpoint's) or a trainer_state.json.
"""

import argparse
import sys
from pathlib import Path

from real_trl.plots import plot_gradient_magnitudes, plot_training_dynamics


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", default=[], metavar="LABEL=PATH", help="repeatable")
    parser.add_argument("--output", default="figures/training_dynamics.png", help="training-dynamics PNG")
    parser.add_argument("--gradients", metavar="PNG", help="also draw Figure 3 (|dJ/ds| vs s) to this file")
    parser.add_argument("--tau", type=float, default=0.5, help="REAL temperature for --gradients")
    parser.add_argument("--epsilon", type=float, default=0.2, help="GRPO clip range for --gradients")
    args = parser.parse_args()
    if not args.run and not args.gradients:
        parser.error("nothing to draw: pass --run LABEL=PATH and/or --gradients out.png")

    if args.run:
        runs = dict(spec.split("=", 1) if "=" in spec else (Path(spec).name, spec) for spec in args.run)
        print("wrote", plot_training_dynamics(runs, args.output)["output"])
    if args.gradients:
        print("wrote", plot_gradient_magnitudes(args.gradients, tau=args.tau, epsilon=args.epsilon)["output"])


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as error:  # bad input: the message names the fix
        sys.exit(f"error: {error}")
