"""A training run evaluated checkpoint by checkpoint (`scripts/evaluate.py --run_dir`), resumably, and reported
twice beside the paper: the final checkpoint and the best by the validation logged in training."""

import json
import shutil
from pathlib import Path

import pytest

from real_trl.cli import UsageError
from real_trl.evaluation import TransformersBackend
from real_trl.evaluation.checkpoints import (
    evaluate_run,
    reported_rows,
    saved_checkpoints,
    select_checkpoints,
    training_log,
    validation_scores,
)

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = [("What is 2+2?", "4"), ("What is 3*3?", "9")]


def write_state(folder: Path, step: int, scores: dict[int, float]) -> None:
    """A trainer_state.json whose log holds training entries and the validations `scores` (step -> eval_reward)."""
    log = [{"step": s, "loss": 0.1} for s in range(1, step + 1)]
    log += [{"step": s, "eval_reward": value, "eval_loss": 0.0} for s, value in scores.items()]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": log}))


def test_the_best_checkpoint_is_chosen_from_the_training_log_among_the_saved_ones(tmp_path):
    scores = {80: 0.30, 160: 0.45, 240: 0.40, 320: 0.45, 400: float("nan"), 480: 0.35}
    # save_total_limit deleted checkpoint-160, the best; 320 ties with it and is the best left
    selection = select_checkpoints([240, 320, 400, 480], validation_scores([{"step": 0}], "eval_reward") | scores)
    assert selection["final"] == 480 and selection["best_validation"] == 320
    assert selection["best_validation_overall"] == {"step": 160, "score": 0.45}  # ties: the earliest, as transformers
    assert select_checkpoints([80, 160], {}) == {
        "final": 160, "best_validation": None, "best_validation_score": None, "best_validation_overall": None
    }  # fmt: skip
    # NaN validations (a reward that scored nothing) are left out
    log = [{"step": 80, "eval_reward": float("nan")}, {"step": 160, "eval_reward": 0.5}, {"step": 160, "loss": 1.0}]
    assert validation_scores(log) == {160: 0.5}
    # the newest trainer_state.json holds the log: the run folder's at the end, the last checkpoint's before
    run = tmp_path / "run"
    write_state(run / "checkpoint-2", 2, {2: 0.1})
    (run / "checkpoint-2" / "config.json").write_text("{}")
    assert validation_scores(training_log(run)) == {2: 0.1}
    write_state(run, 4, {2: 0.1, 4: 0.2})
    assert validation_scores(training_log(run)) == {2: 0.1, 4: 0.2}
    (run / "checkpoint-6").mkdir()  # no model in it: not a checkpoint to evaluate
    assert list(saved_checkpoints(run)) == [2]


@pytest.fixture
def trained_run(tmp_path, tiny_model_dir):
    """A run folder with three checkpoints of the tiny model, validated best at step 4 and final at step 6."""
    run = tmp_path / "run"
    for step in (2, 4, 6):
        shutil.copytree(tiny_model_dir, run / f"checkpoint-{step}")
    write_state(run, 6, {2: 0.25, 4: 0.5, 6: 0.375})
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps({"problem": p, "answer": a}) + "\n" for p, a in PROBLEMS))
    return run, bench


def _evaluate(run: Path, bench: Path, out: Path, *flags: str) -> str:
    import evaluate

    evaluate.main(["--run_dir", str(run), "--output_dir", str(out), "--benchmarks", f"aime24={bench}", "--n", "2",
                   "--max_new_tokens", "4", "--backend", "transformers", "--batch_size", "4", *flags])  # fmt: skip
    return (out / "results.md").read_text()


def test_every_checkpoint_is_evaluated_resumably_and_tabled_twice(trained_run, tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    run, bench = trained_run
    out = tmp_path / "eval"
    results = _evaluate(run, bench, out)
    record = json.loads((out / "run_evaluation.json").read_text())
    assert (record["final"], record["best_validation"], record["best_validation_score"]) == (
        "checkpoint-6", "checkpoint-4", 0.5
    )  # fmt: skip
    assert record["validation"] == {"2": 0.25, "4": 0.5, "6": 0.375}
    for step in (2, 4, 6):  # each checkpoint in its own folder, with its validation score beside it
        summary = json.loads((out / f"checkpoint-{step}" / "summary.json").read_text())
        assert (
            summary["model"] == str(run / f"checkpoint-{step}") and summary["benchmarks"]["aime24"]["num_samples"] == 4
        )
        assert record["checkpoints"][f"checkpoint-{step}"]["validation"] == {2: 0.25, 4: 0.5, 6: 0.375}[step]
    assert "| checkpoint-4 (best validation) |" in results and "| checkpoint-6 (final) |" in results
    assert "never the test results" in results

    # Running it again generates nothing and loads no model.
    def refuse(*args, **kwargs):
        raise AssertionError("a finished checkpoint was evaluated again")

    monkeypatch.setattr(TransformersBackend, "__init__", refuse)
    assert _evaluate(run, bench, out) == results

    import reproduce_tables

    capsys.readouterr()
    reproduce_tables.main(["--table", "1", "--results", f"REAL={out}", "--output_dir", str(tmp_path / "t")])
    table = capsys.readouterr().out
    assert table.count("| REAL (paper) |") == 1  # the paper's row once, then ours twice, each labelled
    assert "| REAL, final (checkpoint-6) (ours)" in table and "| REAL, best validation (checkpoint-4) (ours)" in table
    assert "| REAL, final (checkpoint-6): ours − paper |" in table
    assert "best validation: the checkpoint with the best validation score logged during training" in table


def test_only_the_final_and_the_best_checkpoints_on_request(trained_run, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    run, bench = trained_run
    out = tmp_path / "eval"
    _evaluate(run, bench, out, "--checkpoints", "final_and_best")
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-6"]
    assert len(reported_rows("GRPO", out)) == 2


def test_run_folder_mistakes_are_one_line(tmp_path):
    with pytest.raises(UsageError, match=r"run folder .* does not exist"):
        evaluate_run(tmp_path / "missing", tmp_path / "out", ["aime24"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="holds no checkpoint-N folder with a model"):
        evaluate_run(tmp_path / "empty", tmp_path / "out", ["aime24"])
