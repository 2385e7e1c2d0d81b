"""Print the paper's Table 1 (1.5B) or Table 2 (7B) with our results beside it (see docs/evaluation.md).

python scripts/reproduce_tables.py --table 1 --results REAL=outputs/eval/REAL GRPO=outputs/eval/GRPO/summary.json
"""

from dataclasses import dataclass, field
from pathlib import Path

from real_trl.cli import fail, parse
from real_trl.evaluation.checkpoints import reported_rows
from real_trl.evaluation.tables import comparison_table

DESCRIPTION = """\
Put evaluation summaries (written by scripts/evaluate.py) beside the paper's Table 1 (DeepSeek-R1-Distill-
Qwen-1.5B) or Table 2 (7B): for each LABEL=PATH the paper's row, ours and the difference. The label names
the paper's row (REAL, GRPO, DAPO, GSPO, TRPA, DeepScaleR, base; any case); other labels (e.g. BCE) are
shown as ours only. Results under different protocols are refused unless --allow_mixed_protocols; rows
graded otherwise than the paper, measured on other problems than the paper's files, or on part of a
benchmark (--limit) are flagged. A PATH holding a run's evaluation (scripts/evaluate.py --run_dir) gives two
labelled rows: its final checkpoint, and its checkpoint with the best validation score logged in training
(chosen from the training log, never from these results). The table is printed and written to
--output_dir/table<N>.md."""


@dataclass
class TablesArguments:
    table: str = field(metadata={"choices": ["1", "2"], "help": "1: DeepSeek-R1-Distill-Qwen-1.5B, 2: -7B"})
    results: list[str] = field(
        metadata={
            "help": "LABEL=PATH of a summary.json or its folder, or of a run's evaluation folder (evaluate.py "
            "--run_dir: final and best-by-validation rows); several values"
        }
    )
    output_dir: str = field(default="outputs/tables", metadata={"help": "folder for table<N>.md"})
    allow_mixed_protocols: bool = field(default=False, metadata={"help": "print results of different protocols"})


def run(args: TablesArguments) -> str:
    """The comparison table, also written to output_dir."""
    results = {}
    for spec in args.results:
        label, sep, path = spec.partition("=")
        if not sep or not label:
            raise ValueError(f"--results {spec!r}: write LABEL=PATH, e.g. REAL=outputs/eval/REAL/summary.json")
        results |= reported_rows(label, path)
    table = comparison_table(args.table, results, allow_mixed=args.allow_mixed_protocols)
    output = Path(args.output_dir) / f"table{args.table}.md"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(table + "\n")
    return table


def main(argv: list[str] | None = None) -> None:
    (args,) = parse([TablesArguments], DESCRIPTION, argv)
    try:
        print(run(args))
    except (ValueError, FileNotFoundError) as error:  # a user's mistake: the message names the fix
        fail(" ".join(str(error).split()))


if __name__ == "__main__":
    main()
