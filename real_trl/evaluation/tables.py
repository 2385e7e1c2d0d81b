"""The paper's tables as markdown, with our results beside them.

`results_table` renders evaluation summaries in the paper's layout (AIME24 ... O-Bench, Avg);
`comparison_table` puts them next to Table 1 (1.5B) or Table 2 (7B) of the paper, row by row with the
difference. The paper's numbers live in `paper_results.json` next to this file.

A table never silently compares unlike things. Results are only comparable under one protocol
(samples per problem, temperature, top-p, token budget): mixing protocols is refused unless asked
for, and then marked. Beside the paper, a row is flagged when it was graded otherwise than the paper
(the official grader, `--grader paper`) or measured on other problems than the paper's files (content
fingerprints differ from real_trl/benchmarks/), and a benchmark evaluated on only some of its problems
(`--limit`) shows its problem count and no difference.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from real_trl.data import EVAL_BENCHMARKS, shipped_benchmarks
from real_trl.evaluation.protocol import PAPER_GRADER, PAPER_PROTOCOL, Protocol

__all__ = [
    "PAPER_COLUMNS",
    "comparison_table",
    "foreign_content",
    "load_summary",
    "match_method",
    "paper_tables",
    "partial_benchmarks",
    "results_table",
]

_HEADERS = {
    "aime24": "AIME24",
    "aime25": "AIME25",
    "math500": "MATH500",
    "amc23": "AMC23",
    "minerva": "Minerva",
    "olympiad_bench": "O-Bench",
}
# Benchmark names and the paper's column headers, in the paper's order (real_trl.data.EVAL_BENCHMARKS).
PAPER_COLUMNS = {name: _HEADERS[name] for name in EVAL_BENCHMARKS}
PROTOCOL_MARK, GRADER_MARK, CONTENT_MARK = " †", " §", " ‡"


@cache
def _paper_data() -> dict:
    return json.loads((Path(__file__).with_name("paper_results.json")).read_text())


def paper_tables() -> dict:
    """{"1": {...}, "2": {...}}: title, model, model_size and rows (method, label, reported, pass@1, avg)."""
    return _paper_data()["tables"]


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


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _fmt_diff(value: float | None) -> str:
    return "–" if value is None else f"{value:+.3f}"


def partial_benchmarks(summary: dict) -> dict[str, str]:
    """Paper benchmarks of a summary evaluated on fewer problems than the paper's files: name -> "n/N"."""
    partial = {}
    for name, metrics in summary["benchmarks"].items():
        if name in PAPER_COLUMNS:
            total = shipped_benchmarks()["benchmarks"][name]["rows"]
            evaluated = metrics.get("num_problems")
            if evaluated is None or evaluated < total:
                partial[name] = f"{'?' if evaluated is None else evaluated}/{total}"
    return partial


def foreign_content(summary: dict) -> list[str]:
    """Paper benchmarks of a summary whose content fingerprint is not the paper's file's (or was not recorded)."""
    content = summary.get("benchmark_content", {})
    paper = shipped_benchmarks()["benchmarks"]
    return [
        name
        for name in summary["benchmarks"]
        if name in PAPER_COLUMNS and content.get(name, {}).get("fingerprint") != paper[name]["content_fingerprint"]
    ]


def _ours(summary: dict) -> tuple[list[str], dict[str, float | None], float | None, bool]:
    """Our cells per paper column, the values to compare, the average, and whether that average is comparable
    (all six benchmarks, each complete)."""
    partial = partial_benchmarks(summary)
    values = {name: summary["benchmarks"].get(name, {}).get("pass@1") for name in PAPER_COLUMNS}
    cells = [_fmt(values[name]) + (f" ({partial[name]})" if name in partial else "") for name in PAPER_COLUMNS]
    present = [v for v in values.values() if v is not None]
    average = sum(present) / len(present) if present else None
    complete = len(present) == len(PAPER_COLUMNS) and not partial
    cells.append(_fmt(average) + ("" if complete or average is None else "*"))
    comparable = {name: None if name in partial else value for name, value in values.items()}
    return cells, comparable, average, complete


def _row(label: str, cells: list[str]) -> str:
    return "| " + " | ".join([label, *cells]) + " |"


def _header(extra: list[str] = ()) -> list[str]:
    columns = [*PAPER_COLUMNS.values(), "Avg", *extra]
    return [_row("", columns), _row("---", ["---"] * len(columns))]


def _protocol_groups(results: dict[str, dict], allow_mixed: bool) -> tuple[Protocol | None, dict[str, str], list[str]]:
    """The shared protocol, the marks for rows outside it, and the warning lines to print with the table."""
    protocols = {label: Protocol.from_dict(summary["protocol"]) for label, summary in results.items()}
    distinct = sorted(set(protocols.values()), key=lambda p: -list(protocols.values()).count(p))
    if len(distinct) <= 1:
        return (distinct[0] if distinct else None), {}, []
    listing = "; ".join(f"{label}: {p.describe()}" for label, p in protocols.items())
    if not allow_mixed:
        raise ValueError(
            f"These results were evaluated under different protocols ({listing}). Re-evaluate them alike, or pass "
            "--allow_mixed_protocols to print them anyway with the odd ones marked."
        )
    main = distinct[0]
    marks = {label: PROTOCOL_MARK for label, p in protocols.items() if p != main}
    warning = f"**Warning: mixed protocols.** Rows marked † were not evaluated with {main.describe()} ({listing})."
    return main, marks, [warning]


def _graders(results: dict[str, dict]) -> str:
    graders = {label: summary.get("grader", "not recorded") for label, summary in results.items()}
    if len(set(graders.values())) == 1:
        return f"grader: {next(iter(graders.values()))}"
    return "graders: " + "; ".join(f"{label}: {grader}" for label, grader in graders.items())


def results_table(results: dict[str, dict], allow_mixed: bool = True) -> str:
    """Our Pass@1 in the paper's layout, one row per labelled summary, protocol and grader stated below.

    Benchmarks outside the paper's six get columns after Avg (which stays over the paper's six)."""
    protocol, marks, warnings = _protocol_groups(results, allow_mixed)
    extra = list(dict.fromkeys(b for s in results.values() for b in s["benchmarks"] if b not in PAPER_COLUMNS))
    lines = [*warnings, *([""] if warnings else []), *_header(extra)]
    notes = set()
    for label, summary in results.items():
        cells, _, average, complete = _ours(summary)
        notes |= {"average"} if not complete and average is not None else set()
        notes |= {"partial"} if partial_benchmarks(summary) else set()
        others = [_fmt(summary["benchmarks"].get(name, {}).get("pass@1")) for name in extra]
        lines.append(_row(label + marks.get(label, ""), cells + others))
    lines.append("")
    if protocol is not None:
        lines.append(f"Pass@1 (mean accuracy over samples); {protocol.describe()}; {_graders(results)}.")
    if "partial" in notes:
        lines.append("(n/N): evaluated on the first n of the benchmark's N problems.")
    if "average" in notes:
        lines.append("\\* average over the paper's benchmarks evaluated only, not comparable to the paper's Avg.")
    return "\n".join(lines)


def _model_size(model: str) -> str | None:
    match = re.search(r"(\d+(?:\.\d+)?)B\b", model)
    return match.group(1) + "B" if match else None


def match_method(label: str, table: dict) -> dict | None:
    """The paper row a user label names: 'REAL', 'grpo', 'GSPO', 'base', 'DeepScaleR', 'TRPA' (case-insensitive)."""
    key = re.sub(r"[^a-z0-9]", "", label.lower())
    return next((row for row in table["rows"] if row["method"] == key), None)


def _paper_flags(label: str, summary: dict, table: dict) -> tuple[str, list[str]]:
    """The marks and warning lines of one result compared with the paper: grader, benchmark content, model size,
    partial benchmarks."""
    marks, warnings = "", []
    grader = summary.get("grader")
    if grader != PAPER_GRADER:
        marks += GRADER_MARK
        warnings.append(
            f"**Warning:** {label} § was graded by {grader or 'an unrecorded grader'}; the paper's numbers come from "
            f"the official grader (evaluate with --grader {PAPER_GRADER})."
        )
    foreign = foreign_content(summary)
    if foreign:
        marks += CONTENT_MARK
        warnings.append(
            f"**Warning:** {label} ‡ was not measured on the paper's problems for {', '.join(foreign)} (content "
            "fingerprint differs from real_trl/benchmarks/ or is not recorded)."
        )
    partial = partial_benchmarks(summary)
    if partial:
        listing = ", ".join(f"{name} ({count} problems)" for name, count in partial.items())
        warnings.append(
            f"**Warning:** {label} covers only part of {listing}; no difference to the paper is shown for them."
        )
    size = _model_size(str(summary.get("model", "")))
    if size is not None and size != table["model_size"]:
        warnings.append(
            f"**Warning:** {label} was evaluated on {summary['model']!r}, which looks like a {size} model; "
            f"this table is {table['model']}."
        )
    return marks, warnings


def _paper_rows(label: str, mark: str, summary: dict, row: dict | None) -> list[str]:
    """The paper's row, ours and the difference for one method (ours only when the paper has no such row)."""
    cells, comparable, average, complete = _ours(summary)
    if row is None:
        return [_row(f"{label} (ours; not in the paper){mark}", cells)]
    paper_cells = [_fmt(row["pass@1"][name]) for name in PAPER_COLUMNS] + [_fmt(row["avg"])]
    diffs = [
        _fmt_diff(None if comparable[name] is None else comparable[name] - row["pass@1"][name])
        for name in PAPER_COLUMNS
    ] + [_fmt_diff(average - row["avg"] if complete else None)]
    return [
        _row(f"{row['label']} (paper)", paper_cells),
        _row(f"{label} (ours){mark}", cells),
        _row(f"{label}: ours − paper", diffs),
    ]


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
    if protocol is not None and protocol != PAPER_PROTOCOL:
        warnings.append(
            f"**Warning: protocol differs from the paper's.** Ours: {protocol.describe()}; paper: "
            f"{PAPER_PROTOCOL.describe()}. Differences below include the effect of the protocol."
        )
    for label, summary in results.items():
        mark, flags = _paper_flags(label, summary, table)
        marks[label] = marks.get(label, "") + mark
        warnings += flags

    # A summary may name the paper row it compares with ("method"): a run reported at two checkpoints.
    matched = [(label, match_method(summary.get("method", label), table)) for label, summary in results.items()]
    order = {row["method"]: i for i, row in enumerate(table["rows"])}
    matched.sort(key=lambda item: order.get(item[1]["method"], len(order)) if item[1] else len(order))

    lines = [f"### {table['title']}", ""] + [w + "\n" for w in warnings] + _header()
    shown = set()
    for label, row in matched:
        rows = _paper_rows(label, marks.get(label, ""), results[label], row)
        if row is not None and row["method"] in shown:
            rows = rows[1:]  # the paper's row once per method
        shown |= {row["method"]} if row is not None else set()
        lines += rows
    lines.append("")
    lines.append(
        "Pass@1 = mean accuracy over samples. Paper rows marked (reported) are numbers the paper quotes from other "
        "work."
    )
    if any(not _ours(summary)[3] for summary in results.values()):
        lines.append("\\* average over part of the paper's problems; no difference to the paper's Avg is shown.")
    if any(partial_benchmarks(summary) for summary in results.values()):
        lines.append("(n/N): evaluated on the first n of the benchmark's N problems.")
    if any(summary.get("selection") == "best validation" for summary in results.values()):
        lines.append(
            "best validation: the checkpoint with the best validation score logged during training (the recipes "
            "validate on AIME 2024 with 8 samples: the AIME24 column's problems, other samples), never chosen on "
            "these results; final: the last checkpoint, no selection."
        )
    return "\n".join(lines)
