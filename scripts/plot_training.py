"""Figures: training dynamics of runs overlaid (paper Figure 4) and/or gradient magnitudes (paper Figure 3)."""

from dataclasses import dataclass, field
from pathlib import Path

from real_trl.cli import fail, parse

DESCRIPTION = """\
Draw the training dynamics of runs overlaid (the paper's Figure 4: entropy, validation and training
accuracy, solve-all ratio) into OUTPUT_DIR/training_dynamics.png, and with --gradients the gradient
magnitudes |dJ/ds| of REAL and GRPO (Figure 3) into OUTPUT_DIR/gradients.png. A run is LABEL=PATH or
PATH, where PATH is a run's output folder (its trainer_state.json, else its latest checkpoint's) or a
trainer_state.json, e.g. --runs REAL=outputs/real GRPO=outputs/grpo."""


@dataclass
class PlotArguments:
    runs: list[str] = field(default_factory=list, metadata={"help": "runs to overlay, LABEL=PATH or PATH"})
    gradients: bool = field(default=False, metadata={"help": "also draw Figure 3 (|dJ/ds| against s)"})
    output_dir: str = field(default="outputs/figures", metadata={"help": "folder the PNG files go to"})
    accuracy_reward: str = field(
        default="math_reward", metadata={"help": "the accuracy panels plot the reward function with this in its name"}
    )
    tau: float = field(default=0.5, metadata={"help": "REAL temperature for --gradients"})
    epsilon: float = field(default=0.2, metadata={"help": "GRPO clip range for --gradients"})

    def __post_init__(self):
        if not self.runs and not self.gradients:
            raise ValueError("nothing to draw: pass --runs LABEL=PATH ... and/or --gradients")


def labelled_runs(specs: list[str]) -> dict[str, str]:
    """{label: path} from LABEL=PATH or PATH (labelled by its folder name); a label given twice is a mistake."""
    runs = {}
    for spec in specs:
        label, path = spec.split("=", 1) if "=" in spec else (Path(spec).name, spec)
        if label in runs:
            raise ValueError(f"two runs are labelled {label!r}; name each one with LABEL=PATH")
        runs[label] = path
    return runs


def main(argv: list[str] | None = None) -> None:
    """Draw the figures the command line asks for."""
    (args,) = parse([PlotArguments], DESCRIPTION, argv)
    # torch and matplotlib load only now, so --help and argument mistakes answer at once
    from real_trl.plots import plot_gradient_magnitudes, plot_training_dynamics

    output_dir = Path(args.output_dir)
    try:
        if args.runs:
            runs = labelled_runs(args.runs)
            drawn = plot_training_dynamics(runs, output_dir / "training_dynamics.png", args.accuracy_reward)
            print("wrote", drawn["output"])
        if args.gradients:
            drawn = plot_gradient_magnitudes(output_dir / "gradients.png", tau=args.tau, epsilon=args.epsilon)
            print("wrote", drawn["output"])
    except (ValueError, FileNotFoundError) as error:  # bad input: the message names the fix
        fail(str(error))


if __name__ == "__main__":
    main()
