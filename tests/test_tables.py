"""The paper's tables beside ours: layout, order, and every flag (protocol, grader, content, partial, size)."""

import json
from pathlib import Path

import pytest

from real_trl.data import shipped_benchmarks
from real_trl.evaluation.tables import PAPER_COLUMNS, comparison_table, load_summary, paper_tables, results_table

ROOT = Path(__file__).resolve().parents[1]
PAPER = {"n": 16, "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 8192}
SHIPPED = shipped_benchmarks()["benchmarks"]


def summary(
    values: dict, protocol=PAPER, model="ckpt/DeepSeek-R1-Distill-Qwen-1.5B-real", grader="paper", problems=None
):
    """A summary as evaluate.py writes it; by default graded and measured as the paper was (all problems)."""
    problems = problems or {}
    return {
        "model": model,
        "protocol": dict(protocol),
        "grader": grader,
        "benchmarks": {
            k: {"pass@1": v, "num_problems": problems.get(k, SHIPPED[k]["rows"])} for k, v in values.items()
        },
        "benchmark_content": {k: {"fingerprint": SHIPPED[k]["content_fingerprint"]} for k in values},
    }


def paper_row(table, method):
    return next(r for r in paper_tables()[table]["rows"] if r["method"] == method)


def test_paper_numbers_are_consistent():
    # Each stored Avg is the mean of its six cells (to the paper's rounding): catches a mistyped cell.
    for table in paper_tables().values():
        for row in table["rows"]:
            assert list(row["pass@1"]) == list(PAPER_COLUMNS)
            assert abs(sum(row["pass@1"].values()) / 6 - row["avg"]) <= 0.001, row["label"]
    assert paper_row("1", "real")["pass@1"]["aime24"] == 0.406
    assert paper_row("2", "real")["avg"] == 0.632


def test_comparison_table_matches_fixture():
    ours = {k: v + 0.01 for k, v in paper_row("1", "real")["pass@1"].items()}
    ours["minerva"] = 0.3
    table = comparison_table(1, {"REAL": summary(ours)})
    expected = "\n".join(
        [
            "### Table 1: DeepSeek-R1-Distill-Qwen-1.5B trained on DeepScaleR, Pass@1",
            "",
            "|  | AIME24 | AIME25 | MATH500 | AMC23 | Minerva | O-Bench | Avg |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
            "| REAL (paper) | 0.406 | 0.321 | 0.877 | 0.734 | 0.310 | 0.508 | 0.526 |",
            "| REAL (ours) | 0.416 | 0.331 | 0.887 | 0.744 | 0.300 | 0.518 | 0.533 |",
            "| REAL: ours − paper | +0.010 | +0.010 | +0.010 | +0.010 | -0.010 | +0.010 | +0.007 |",
            "",
            "Pass@1 = mean accuracy over samples. Paper rows marked (reported) are numbers the paper quotes from other "
            + "work.",
        ]
    )
    assert table == expected


def test_methods_in_paper_order_and_unknown_labels_kept():
    six = dict.fromkeys(PAPER_COLUMNS, 0.5)
    table = comparison_table(
        "2", {"bce": summary(six, model="x-7B"), "real": summary(six, model="x-7B"), "GRPO": summary(six, model="x-7B")}
    )
    lines = table.splitlines()
    grpo = lines.index(next(line for line in lines if line.startswith("| GRPO (reported) (paper)")))
    real = lines.index(next(line for line in lines if line.startswith("| REAL (paper)")))
    assert grpo < real
    assert any(line.startswith("| bce (ours; not in the paper) | 0.500") for line in lines)
    assert "Warning" not in table


def test_mixed_protocols_refused_or_flagged():
    six = dict.fromkeys(PAPER_COLUMNS, 0.5)
    results = {
        "REAL": summary(six),
        "GRPO": summary(six),
        "DAPO": summary(six, protocol=dict(PAPER, n=4)),
    }
    with pytest.raises(ValueError, match=r"different protocols.*--allow_mixed_protocols"):
        comparison_table(1, results)
    table = comparison_table(1, results, allow_mixed=True)
    assert "Warning: mixed protocols" in table
    assert "| DAPO (ours) † |" in table
    assert "| REAL (ours) |" in table


def test_protocol_and_model_size_warnings():
    six = dict.fromkeys(PAPER_COLUMNS, 0.5)
    table = comparison_table(
        1, {"REAL": summary(six, protocol=dict(PAPER, temperature=1.0), model="DeepSeek-R1-Distill-Qwen-7B")}
    )
    assert "protocol differs from the paper's" in table and "temperature=1.0" in table
    assert "looks like a 7B model" in table


def test_missing_benchmarks_marked_and_no_average_difference():
    table = comparison_table(1, {"REAL": summary({"aime24": 0.5, "math500": 0.9})})
    ours = next(line for line in table.splitlines() if line.startswith("| REAL (ours)"))
    assert ours == "| REAL (ours) | 0.500 | – | 0.900 | – | – | – | 0.700* |"
    diff = next(line for line in table.splitlines() if line.startswith("| REAL: ours"))
    assert diff.endswith("| – |") and "+0.094" in diff
    assert "average over part of the paper's problems" in table


def test_partial_benchmark_shows_its_count_and_no_difference():
    six = dict.fromkeys(PAPER_COLUMNS, 0.5)
    table = comparison_table(1, {"REAL": summary(six, problems={"math500": 10})})
    ours = next(line for line in table.splitlines() if line.startswith("| REAL (ours)"))
    assert ours == "| REAL (ours) | 0.500 | 0.500 | 0.500 (10/500) | 0.500 | 0.500 | 0.500 | 0.500* |"
    diff = next(line for line in table.splitlines() if line.startswith("| REAL: ours"))
    assert diff == "| REAL: ours − paper | +0.094 | +0.179 | – | -0.234 | +0.190 | -0.008 | – |"
    assert "REAL covers only part of math500 (10/500 problems)" in table
    unrecorded = summary(six)
    del unrecorded["benchmarks"]["aime24"]["num_problems"]  # an older summary: the count is unknown
    assert "aime24 (?/30 problems)" in comparison_table(1, {"REAL": unrecorded})


def test_other_grader_flagged():
    six = dict.fromkeys(PAPER_COLUMNS, 0.5)
    table = comparison_table(1, {"REAL": summary(six, grader="math_verify"), "GRPO": summary(six)})
    assert "| REAL (ours) § |" in table and "| GRPO (ours) |" in table
    assert "REAL § was graded by math_verify" in table and "--grader paper" in table
    unrecorded = summary(six)
    del unrecorded["grader"]
    assert "graded by an unrecorded grader" in comparison_table(1, {"REAL": unrecorded})


def test_other_benchmark_content_flagged():
    six = dict.fromkeys(PAPER_COLUMNS, 0.5)
    hub = summary(six)
    hub["benchmark_content"]["aime24"]["fingerprint"] = "0" * 64  # e.g. evaluated on aime24_hub
    del hub["benchmark_content"]["minerva"]  # not recorded
    table = comparison_table(1, {"REAL": hub})
    assert "| REAL (ours) ‡ |" in table
    assert "not measured on the paper's problems for aime24, minerva" in table
    assert "‡" not in comparison_table(1, {"REAL": summary(six)})


def test_results_table_layout():
    table = results_table({"mine": summary(dict.fromkeys(PAPER_COLUMNS, 0.25), protocol=dict(PAPER, n=2))})
    assert "|  | AIME24 | AIME25 | MATH500 | AMC23 | Minerva | O-Bench | Avg |" in table
    assert "| mine | 0.250 | 0.250 | 0.250 | 0.250 | 0.250 | 0.250 | 0.250 |" in table
    assert "n=2, temperature=0.6" in table and "grader: paper." in table
    extra = results_table({"mine": summary({"aime24": 0.5}, problems={"aime24": 3}) | {"grader": "math_verify"}})
    assert "| mine | 0.500 (3/30) | – | – | – | – | – | 0.500* |" in extra
    assert "(n/N): evaluated on the first n" in extra and "grader: math_verify." in extra
    mine = summary({"aime24": 0.5})
    mine["benchmarks"]["my-bench"] = {"pass@1": 0.125}
    extra = results_table({"mine": mine})
    assert "| Avg | my-bench |" in extra
    assert "| mine | 0.500 | – | – | – | – | – | 0.500* | 0.125 |" in extra


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"evaluate\.py"):
        load_summary(tmp_path / "nope")
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(ValueError, match="not an evaluation summary"):
        load_summary(tmp_path)
    with pytest.raises(ValueError, match="Unknown table"):
        comparison_table(3, {"REAL": summary({})})


def test_reproduce_tables_script(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import reproduce_tables

    path = tmp_path / "real" / "summary.json"
    path.parent.mkdir()
    path.write_text(json.dumps(summary(dict.fromkeys(PAPER_COLUMNS, 0.5))))
    reproduce_tables.main(["--table", "1", "--results", f"REAL={path.parent}", "--output_dir", str(tmp_path / "t")])
    printed = capsys.readouterr().out
    assert "| REAL (ours) | 0.500" in printed
    assert (tmp_path / "t" / "table1.md").read_text().strip() == printed.strip()
    for argv, message in (
        (["--table", "1", "--results", str(path)], "write LABEL=PATH"),
        (["--table", "3", "--results", f"REAL={path}"], "invalid choice: '3'"),
        (["--table", "1", "--results", f"REAL={tmp_path / 'none'}"], "run scripts/evaluate.py first"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            reproduce_tables.main([*argv, "--output_dir", str(tmp_path / "t")])
        assert exit_info.value.code == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and error.startswith("error: ") and message in error, error
