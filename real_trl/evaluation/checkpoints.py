"""Every saved checkpoint of a training run, evaluated, and the two a table reports.

The official release says neither how long its runs trained for the tables (its script sets 30 epochs)
nor which step was evaluated (written by hand into its evaluation script). So a run is reported twice:

- the final checkpoint: no selection at all;
- the checkpoint with the best validation score logged during training (`eval_reward` by default: the mean
  validation reward, AIME 2024 with 8 samples in the recipes, as the official validation). It is chosen from
  the training log alone, never from the evaluation results. The validation set is AIME 2024, which is also
  the tables' first column, so that row's AIME 2024 cell is selected on its own problems (with other samples).

`evaluate_run` evaluates each saved `checkpoint-N` of a run folder into `OUT/checkpoint-N/` (resumable: it
reuses `evaluate_model`, which reads finished benchmarks back without loading the model) and writes
`OUT/run_evaluation.json` with the validation scores and the two selections; `scripts/reproduce_tables.py`
reads it.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from real_trl.cli import UsageError
from real_trl.evaluation import tables
from real_trl.evaluation.protocol import PAPER_PROTOCOL, Protocol
from real_trl.evaluation.run import evaluate_model

RUN_EVALUATION_FILE = "run_evaluation.json"
DEFAULT_VALIDATION_METRIC = "eval_reward"  # what the recipes' metric_for_best_model ("reward") names
CHECKPOINT_CHOICES = ("all", "final_and_best")
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")


def saved_checkpoints(run_dir: str | Path) -> dict[int, Path]:
    """The `checkpoint-N` folders of a run that hold a model, by optimizer step N."""
    found = {}
    for path in Path(run_dir).iterdir():
        match = _CHECKPOINT.fullmatch(path.name)
        if match and path.is_dir() and (path / "config.json").is_file():
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def training_log(run_dir: str | Path) -> list[dict]:
    """The log history of the run: the newest `trainer_state.json` (the run folder's, written at the end, or
    its last checkpoint's while it trains); empty when there is none."""
    run_dir = Path(run_dir)
    states = [
        run_dir / "trainer_state.json",
        *(path / "trainer_state.json" for path in saved_checkpoints(run_dir).values()),
    ]
    newest, newest_step = [], -1
    for path in states:
        if path.is_file():
            state = json.loads(path.read_text())
            if state.get("global_step", 0) > newest_step:
                newest, newest_step = state.get("log_history", []), state.get("global_step", 0)
    return newest


def validation_scores(log: list[dict], metric: str = DEFAULT_VALIDATION_METRIC) -> dict[int, float]:
    """Each logged validation's score, by optimizer step (NaN and missing values left out)."""
    scores = {}
    for entry in log:
        value = entry.get(metric)
        if isinstance(value, int | float) and not math.isnan(value):
            scores[int(entry["step"])] = float(value)
    return scores


def select_checkpoints(steps: list[int], scores: dict[int, float]) -> dict:
    """The final checkpoint and the best by validation among `steps` (ties: the earliest, as transformers keeps
    its first best). Also the best validation over the whole run, which may have no checkpoint left."""
    final = max(steps) if steps else None
    scored = [step for step in steps if step in scores]
    best = max(scored, key=lambda step: (scores[step], -step)) if scored else None
    overall = max(scores, key=lambda step: (scores[step], -step)) if scores else None
    return {
        "final": final,
        "best_validation": best,
        "best_validation_score": scores.get(best) if best is not None else None,
        "best_validation_overall": None if overall is None else {"step": overall, "score": scores[overall]},
    }


def evaluate_run(
    run_dir: str | Path,
    out_dir: str | Path,
    benchmarks,
    protocol: Protocol = PAPER_PROTOCOL,
    *,
    which: str = "all",
    validation_metric: str = DEFAULT_VALIDATION_METRIC,
    label: str | None = None,
    **evaluate_options,
) -> dict:
    """Evaluate the saved checkpoints of `run_dir` (all, or only the final one and the best by validation),
    each into `out_dir/checkpoint-N`, and write `out_dir/run_evaluation.json`; returns its record.

    `evaluate_options` go to `evaluate_model` (grader, limit, backend, backend_options, overwrite). Running it
    again resumes: finished checkpoints are read back without loading their model."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if which not in CHECKPOINT_CHOICES:
        raise UsageError(f"unknown checkpoint choice {which!r}: choose one of {', '.join(CHECKPOINT_CHOICES)}")
    if not run_dir.is_dir():
        raise UsageError(f"run folder {run_dir} does not exist: give the output_dir of a training run")
    checkpoints = saved_checkpoints(run_dir)
    if not checkpoints:
        raise UsageError(f"run folder {run_dir} holds no checkpoint-N folder with a model; nothing to evaluate")
    scores = validation_scores(training_log(run_dir), validation_metric)
    selection = select_checkpoints(list(checkpoints), scores)
    chosen = sorted({selection["final"], selection["best_validation"]} - {None}) if which != "all" else checkpoints
    label = label or run_dir.name
    record = {
        "label": label,
        "run_dir": str(run_dir),
        "validation_metric": validation_metric,
        "validation": {str(step): score for step, score in scores.items()},
        **{key: _name(value) if key in ("final", "best_validation") else value for key, value in selection.items()},
        "checkpoints": {},
    }
    summaries = {}
    for step in chosen:
        name = checkpoints[step].name
        summary = evaluate_model(
            str(checkpoints[step]), benchmarks, out_dir / name, protocol, label=f"{label} {name}", **evaluate_options
        )
        summaries[_row_label(name, record)] = summary
        record["checkpoints"][name] = {"step": step, "validation": scores.get(step), "summary": f"{name}/summary.json"}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / RUN_EVALUATION_FILE).write_text(json.dumps(record, indent=2))
    (out_dir / "results.md").write_text(tables.results_table(summaries) + "\n" + _selection_note(record) + "\n")
    return record


def _name(step: int | None) -> str | None:
    return None if step is None else f"checkpoint-{step}"


def _row_label(name: str, record: dict) -> str:
    marks = [mark for mark, key in (("final", "final"), ("best validation", "best_validation")) if record[key] == name]
    return f"{name} ({', '.join(marks)})" if marks else name


def _selection_note(record: dict) -> str:
    """One line saying how the two reported checkpoints were chosen, and what the log could not offer."""
    lines = [f"final: {record['final']}; best by validation ({record['validation_metric']} logged in training, "
             f"never the test results): {record['best_validation'] or 'none logged'}."]  # fmt: skip
    overall = record["best_validation_overall"]
    if overall and _name(overall["step"]) != record["best_validation"]:
        lines.append(
            f"The best validation of the run was at step {overall['step']} ({overall['score']:.3f}), whose checkpoint "
            "was not saved or was deleted (save_total_limit without metric_for_best_model)."
        )
    return " ".join(lines)


def load_run_evaluation(path: str | Path) -> dict | None:
    """The record `evaluate_run` wrote in `path` (a folder or the file itself), or None when there is none."""
    path = Path(path)
    file = path / RUN_EVALUATION_FILE if path.is_dir() else path
    if file.name != RUN_EVALUATION_FILE or not file.is_file():
        return None
    return json.loads(file.read_text())


def reported_rows(label: str, path: str | Path) -> dict[str, dict]:
    """The summaries a table shows for `label`: the one at `path`, or, for a run evaluated by `evaluate_run`,
    its final checkpoint and its best by validation, each labelled with what it is. Each summary carries the
    paper row it compares with under "method" (the label itself), and a run's rows how they were chosen under
    "selection"."""
    record = load_run_evaluation(path)
    if record is None:
        return {label: {**tables.load_summary(path), "method": label}}
    rows = {}
    for key, what in (("final", "final"), ("best_validation", "best validation")):
        name = record[key]
        if name is None:
            continue
        if name not in record["checkpoints"]:
            raise ValueError(f"{path}: {name} ({what}) was not evaluated; run scripts/evaluate.py --run_dir again")
        summary = tables.load_summary(Path(path) / record["checkpoints"][name]["summary"])
        rows[f"{label}, {what} ({name})"] = {**summary, "method": label, "selection": what}
    return rows
