"""Print the paper's Table 1 (1.5B) or Table 2 (7B) with our results beside it and the difference.

    python scripts/reproduce_tables.py --table 1 --result REAL=eval/real/summary.json --result GRPO=eval/grpo
    python scripts/reproduce_tables.py --table 1 --result base=eval/base --output table1.md

LABEL names the paper's row (REAL, GRPO, DAPO, GSPO, TRPA, DeepScaleR, base; case-insensitive); other
labels (e.g. BCE) are shown as ours only. Summaries evaluated under different protocols are refused
unless --allow-mixed-protocols, which prints them with the odd ones marked.
"""

import argparse
import sys
from pathlib import Path

from real_trl.tables import comparison_table, load_summary


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", choices=["1", "2"], required=True, help="1: DeepSeek-R1-Distill-Qwen-1.5B, 2: -7B")
    parser.add_argument(
        "--result", action="append", required=True, metavar="LABEL=PATH", help="summary.json or its folder; repeatable"
    )
    parser.add_argument("--allow-mixed-protocols", action="store_true")
    parser.add_argument("--output", help="also write the markdown table here")
    args = parser.parse_args()

    results = {}
    for spec in args.result:
        if "=" not in spec:
            parser.error(f"--result {spec!r}: write LABEL=PATH, e.g. REAL=eval/real/summary.json")
        label, path = spec.split("=", 1)
        results[label] = load_summary(path)
    table = comparison_table(args.table, results, allow_mixed=args.allow_mixed_protocols)
    if args.output:
        Path(args.output).write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as error:  # bad input: the message names the fix
        sys.exit(f"error: {error}")
