"""The paper's tables as markdown, with our results beside them.

`results_table` renders evaluation summaries in the paper's layout (AIME24 ... O-Bench, Avg);
`comparison_table` puts them next to Table 1 (1.5B) or Table 2 (7B) of the paper, row by row with the
difference. The paper's numbers live in `paper_results.json` next to this file.

Results are only comparable under one protocol (samples per problem, temperature, top-p, token
budget): mixing protocols in one table is refused unless asked for, and then marked in the table.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

__all__ = [
    "PAPER_COLUMNS",
    "paper_tables",
    "paper_protocol",
    "load_summary",
    "results_table",
    "comparison_table",
]

# Benchmark registry names and the paper's column headers, in the paper's order.
PAPER_COLUMNS = {
    "aime24": "AIME24",
    "aime25": "AIME25",
    "math500": "MATH500",
    "amc23": "AMC23",
    "minerva": "Minerva",
    "olympiad_bench": "O-Bench",
}
PROTOCOL_KEYS = ("n", "temperature", "top_p", "max_new_tokens")


@cache
def _paper_data() -> dict:
    return json.loads((Path(__file__).with_name("paper_results.json")).read_text())


def paper_tables() -> dict:
    """{"1": {...}, "2": {...}}: title, model, model_size and rows (method, label, reported, pass@1, avg)."""
    return _paper_data()["tables"]


def paper_protocol() -> dict:
    return dict(_paper_data()["protocol"])


def load_summary(path: str | Path) -> dict:
    """An evaluation summary from `summary.json` or the directory holding it."""
    path = Path(path)
    if path.is_dir():
        path = path / "summary.json"
    if not path.exists():
        raise FileNotFoundError(
            f"No evaluation summary at {path}; run scripts/evaluate.py first (it writes summary.json)."
        )
    summary = json.loads(path.read_text())
    if "protocol" not in summary or "benchmarks" not in summary:
        raise ValueError(f"{path} is not an evaluation summary (no 'protocol'/'benchmarks'); pass a summary.json.")
    return summary


def _protocol(summary: dict) -> tuple:
    return tuple(summary["protocol"][key] for key in PROTOCOL_KEYS)


def _describe(protocol: tuple) -> str:
    return ", ".join(f"{key}={value}" for key, value in zip(PROTOCOL_KEYS, protocol))


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _fmt_diff(value: float | None) -> str:
    return "–" if value is None else f"{value:+.3f}"


def _ours(summary: dict) -> tuple[dict[str, float | None], float | None, bool]:
    """Pass@1 per paper column, the average, and whether the average covers all six benchmarks."""
    cells = {name: summary["benchmarks"].get(name, {}).get("pass@1") for name in PAPER_COLUMNS}
    present = [v for v in cells.values() if v is not None]
    average = sum(present) / len(present) if present else None
    return cells, average, len(present) == len(PAPER_COLUMNS)


def _row(label: str, cells: list[str]) -> str:
    return "| " + " | ".join([label] + cells) + " |"


def _header(extra: list[str] = ()) -> list[str]:
    columns = list(PAPER_COLUMNS.values()) + ["Avg"] + list(extra)
    return [_row("", columns), _row("---", ["---"] * len(columns))]


def _protocol_groups(results: dict[str, dict], allow_mixed: bool) -> tuple[tuple | None, dict[str, str], list[str]]:
    """The shared protocol, the marks for rows outside it, and the warning lines to print with the table."""
    protocols = {label: _protocol(summary) for label, summary in results.items()}
    distinct = sorted(set(protocols.values()), key=lambda p: -list(protocols.values()).count(p))
    if len(distinct) <= 1:
        return (distinct[0] if distinct else None), {}, []
    listing = "; ".join(f"{label}: {_describe(p)}" for label, p in protocols.items())
    if not allow_mixed:
        raise ValueError(
            f"These results were evaluated under different protocols ({listing}). Re-evaluate them alike, or pass "
            "--allow-mixed-protocols to print them anyway with the odd ones marked."
        )
    main = distinct[0]
    marks = {label: " †" for label, p in protocols.items() if p != main}
    warning = f"**Warning: mixed protocols.** Rows marked † were not evaluated with {_describe(main)} ({listing})."
    return main, marks, [warning]


def results_table(results: dict[str, dict], allow_mixed: bool = True) -> str:
    """Our Pass@1 in the paper's layout, one row per labelled summary, protocol stated below.

    Benchmarks outside the paper's six get columns after Avg (which stays over the paper's six)."""
    protocol, marks, warnings = _protocol_groups(results, allow_mixed)
    extra = list(dict.fromkeys(b for s in results.values() for b in s["benchmarks"] if b not in PAPER_COLUMNS))
    lines = warnings + ([""] if warnings else []) + _header(extra)
    partial = False
    for label, summary in results.items():
        cells, average, complete = _ours(summary)
        partial |= not complete
        avg_cell = _fmt(average) + ("" if complete or average is None else "*")
        others = [_fmt(summary["benchmarks"].get(name, {}).get("pass@1")) for name in extra]
        lines.append(
            _row(label + marks.get(label, ""), [_fmt(cells[name]) for name in PAPER_COLUMNS] + [avg_cell] + others)
        )
    lines.append("")
    if protocol is not None:
        lines.append(f"Pass@1 (mean accuracy over samples); {_describe(protocol)}.")
    if partial:
        lines.append("\\* average over the paper's benchmarks evaluated only, not comparable to the paper's Avg.")
    return "\n".join(lines)


def _model_size(model: str) -> str | None:
    match = re.search(r"(\d+(?:\.\d+)?)B\b", model)
    return match.group(1) + "B" if match else None


def match_method(label: str, table: dict) -> dict | None:
    """The paper row a user label names: 'REAL', 'grpo', 'GSPO', 'base', 'DeepScaleR', 'TRPA' (case-insensitive)."""
    key = re.sub(r"[^a-z0-9]", "", label.lower())
    return next((row for row in table["rows"] if row["method"] == key), None)


def comparison_table(table_id: str | int, results: dict[str, dict], allow_mixed: bool = False) -> str:
    """Table 1 or 2 of the paper with ours beside it: for each method given, paper / ours / difference rows.

    `results` maps a method label (matched to the paper's rows by `match_method`) to its evaluation
    summary. Methods the paper does not have get an "ours" row only.
    """
    tables = paper_tables()
    if str(table_id) not in tables:
        raise ValueError(f"Unknown table {table_id!r}; the paper has tables {', '.join(tables)} (1: 1.5B, 2: 7B).")
    table = tables[str(table_id)]
    if not results:
        raise ValueError("No results given: pass at least one LABEL=path/to/summary.json.")
    protocol, marks, warnings = _protocol_groups(results, allow_mixed)
    paper = tuple(paper_protocol()[key] for key in PROTOCOL_KEYS)
    if protocol is not None and protocol != paper:
        warnings.append(
            f"**Warning: protocol differs from the paper's.** Ours: {_describe(protocol)}; paper: {_describe(paper)}. "
            "Differences below include the effect of the protocol."
        )
    for label, summary in results.items():
        size = _model_size(str(summary.get("model", "")))
        if size is not None and size != table["model_size"]:
            warnings.append(
                f"**Warning:** {label} was evaluated on {summary['model']!r}, which looks like a {size} model; "
                f"table {table_id} is {table['model']}."
            )

    matched = [(label, match_method(label, table)) for label in results]
    order = {row["method"]: i for i, row in enumerate(table["rows"])}
    matched.sort(key=lambda item: order.get(item[1]["method"], len(order)) if item[1] else len(order))

    lines = [f"### {table['title']}", ""] + [w + "\n" for w in warnings] + _header()
    partial = False
    for label, row in matched:
        cells, average, complete = _ours(results[label])
        partial |= not complete
        mark = marks.get(label, "")
        avg_cell = _fmt(average) + ("" if complete or average is None else "*")
        ours = [_fmt(cells[name]) for name in PAPER_COLUMNS] + [avg_cell]
        if row is None:
            lines.append(_row(f"{label} (ours; not in the paper){mark}", ours))
            continue
        paper_cells = [_fmt(row["pass@1"][name]) for name in PAPER_COLUMNS] + [_fmt(row["avg"])]
        diffs = [
            _fmt_diff(None if cells[name] is None else cells[name] - row["pass@1"][name]) for name in PAPER_COLUMNS
        ] + [_fmt_diff(average - row["avg"] if complete else None)]
        lines += [
            _row(f"{row['label']} (paper)", paper_cells),
            _row(f"{label} (ours){mark}", ours),
            _row(f"{label}: ours − paper", diffs),
        ]
    lines.append("")
    lines.append(
        "Pass@1 = mean accuracy over samples. Paper rows marked (reported) are numbers the paper quotes from other "
        "work."
    )
    if partial:
        lines.append("\\* average over the benchmarks evaluated only; no difference to the paper's Avg is shown.")
    return "\n".join(lines)
