import itertools
import json
import math
from pathlib import Path

import pytest
import torch

import real_trl.plots
from real_trl.losses import real_gradient_weights
from real_trl.plots import (
    accuracy_reward_name,
    gradient_magnitudes,
    load_log_history,
    plot_gradient_magnitudes,
    plot_training_dynamics,
)

from helpers import run_help

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def curves():
    return gradient_magnitudes(tau=0.5, epsilon=0.2, s_min=-2.0, s_max=2.0, num=41)


def test_real_gradients_are_bounded_and_monotone(curves):
    pos, neg = curves["real_positive"], curves["real_negative"]
    assert max(pos + neg) < 1 / 0.5
    assert all(a > b for a, b in itertools.pairwise(pos))  # a positive that already rose gets less weight
    assert all(a < b for a, b in itertools.pairwise(neg))  # a negative that rose gets more
    # Autograd through real_loss agrees with the closed-form weight W for a group {sample, sibling at s=0}.
    s = torch.tensor(curves["s"], dtype=torch.float64)
    for label, values in ((1, pos), (0, neg)):
        closed = [
            abs(
                real_gradient_weights(
                    torch.stack([v, torch.zeros((), dtype=torch.float64)]),
                    torch.tensor([label, 1 - label]),
                    torch.zeros(2, dtype=torch.long),
                    0.5,
                )[0].item()
            )
            for v in s
        ]
        assert values == pytest.approx(closed, rel=1e-9)


def test_grpo_gradients_from_trl_show_clipping(curves):
    # Ratio e^s, advantage +-1, clip 0.2: a positive loses all gradient above ratio 1.2; a negative's
    # gradient is e^s, unbounded, and vanishes below ratio 0.8.
    for s, pos, neg in zip(curves["s"], curves["grpo_positive"], curves["grpo_negative"], strict=True):
        assert pos == pytest.approx(math.exp(s) if s < math.log(1.2) else 0.0, abs=1e-12)
        assert neg == pytest.approx(math.exp(s) if s > math.log(0.8) else 0.0, abs=1e-12)
    assert max(curves["grpo_negative"]) == pytest.approx(math.exp(2.0))


def test_gradient_figure_written(tmp_path):
    out = tmp_path / "fig3.png"
    data = plot_gradient_magnitudes(out, tau=0.5, num=21)
    assert out.stat().st_size > 1000
    assert [p["title"] for p in data["panels"]] == ["Positive sample", "Negative sample"]
    assert data["panels"][0]["ylabel"] == "|dJ/ds|"
    assert list(data["panels"][1]["series"]) == ["REAL (tau=0.5)", "GRPO (clip eps=0.2)"]
    assert data["panels"][1]["series"]["REAL (tau=0.5)"] == data["real_negative"]


def write_run(directory, accuracy=0.2, eval_steps=(1, 3), reward_names=("math_reward", "think_format_reward")):
    """A trainer_state.json as TRL writes it: per-function rewards next to their weighted sum."""
    history = []
    for step in (1, 2, 3):
        entry = {"step": step, "entropy": 0.25 * step, "reward": 0.1 * step + 1.0, "groups/solve_all": 0.05 * step}
        entry.update({f"rewards/{name}/mean": 0.1 * step for name in reward_names})
        history.append(entry)
        if step in eval_steps:
            evaluation = {"step": step, "eval_reward": accuracy * step + 0.375}  # the sum counts the format reward
            evaluation.update({f"eval_rewards/{name}/mean": accuracy * step for name in reward_names})
            history.append(evaluation)
    directory.mkdir(parents=True)
    (directory / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    return directory


def test_training_dynamics_plot_the_accuracy_reward_not_the_sum(tmp_path):
    real = write_run(tmp_path / "real" / "checkpoint-3").parent
    (tmp_path / "real" / "checkpoint-1").mkdir()  # older, without a state: the latest one is read
    grpo = write_run(tmp_path / "grpo", accuracy=0.1, eval_steps=(3,))
    out = tmp_path / "fig4.png"
    data = plot_training_dynamics({"REAL": real, "GRPO": grpo / "trainer_state.json"}, out)
    assert out.stat().st_size > 1000
    panels = {p["title"]: p for p in data["panels"]}
    assert list(panels) == ["Entropy", "Validation accuracy", "Training accuracy", "Solve-all ratio"]
    assert panels["Entropy"]["series"]["REAL"] == ([1, 2, 3], [0.25, 0.5, 0.75])
    validation = panels["Validation accuracy"]
    assert validation["ylabel"] == "eval_rewards/math_reward/mean"
    assert validation["series"]["REAL"] == ([1, 3], [0.2, pytest.approx(0.6)])
    assert validation["series"]["GRPO"] == ([3], [pytest.approx(0.3)])  # a single evaluation is still drawn
    assert panels["Training accuracy"]["series"]["GRPO"][1] == pytest.approx([0.1, 0.2, 0.3])
    assert panels["Solve-all ratio"]["series"]["GRPO"][1] == pytest.approx([0.05, 0.1, 0.15])
    assert all(p["xlabel"] == "step" for p in panels.values())


def test_identical_runs_stay_distinguishable_with_marked_points_and_integer_steps(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(real_trl.plots, "_save", lambda figure, output: drawn.append(figure))
    run = write_run(tmp_path / "run", eval_steps=(2,))
    plot_training_dynamics({"first": run, "second": run}, tmp_path / "x.png")
    validation = drawn[0].axes[1]
    first, second = validation.get_lines()
    assert first.get_xydata().tolist() == second.get_xydata().tolist() == [[2.0, 0.4]]
    assert first.get_linestyle() != second.get_linestyle() and first.get_marker() != second.get_marker()
    assert first.get_marker() not in (None, "None", "")
    ticks = drawn[0].axes[0].get_xticks()
    assert all(float(t).is_integer() for t in ticks)


def test_accuracy_reward_is_chosen_by_name():
    history = [{"step": 1, "rewards/math_reward_strict/mean": 1.0, "rewards/math_reward/mean": 0.5}]
    history.append({"step": 1, "eval_rewards/accuracy_reward/mean": 0.3, "eval_rewards/math_reward/std": 0.1})
    assert accuracy_reward_name(history) == "math_reward"
    assert accuracy_reward_name(history, "accuracy") == "accuracy_reward"
    assert accuracy_reward_name(history, "length") is None


def test_a_run_without_the_accuracy_reward_says_so(tmp_path):
    run = write_run(tmp_path / "run", reward_names=("digit_reward",))
    data = plot_training_dynamics({"run": run}, tmp_path / "x.png")
    validation = data["panels"][1]
    assert validation["series"] == {} and validation["ylabel"] == "eval_rewards/math_reward/mean"
    data = plot_training_dynamics({"run": run}, tmp_path / "y.png", accuracy_reward="digit")
    assert data["panels"][1]["series"]["run"][0] == [1, 3]


def test_missing_runs(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"trainer_state\.json"):
        load_log_history(tmp_path)
    with pytest.raises(ValueError, match="No runs"):
        plot_training_dynamics({}, tmp_path / "x.png")


@pytest.fixture
def plot_script(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import plot_training

    return plot_training


def test_plot_script(tmp_path, plot_script):
    run = write_run(tmp_path / "run")
    plot_script.main(["--runs", f"REAL={run}", str(run), "--output_dir", str(tmp_path / "figures")])
    assert (tmp_path / "figures" / "training_dynamics.png").stat().st_size > 1000
    assert plot_script.PlotArguments(gradients=True).output_dir == "outputs/figures"  # git-ignored


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "error: nothing to draw: pass --runs LABEL=PATH ... and/or --gradients"),
        (["--runs", "a/run", "b/run"], "error: two runs are labelled 'run'; name each one with LABEL=PATH"),
        (["--runs", "REAL=/nonexistent"], "error: /nonexistent does not exist; pass a run's output directory"),
        (["--gradients", "--tau", "half"], "error: argument --tau: invalid float value: 'half'"),
    ],
)
def test_plot_script_mistakes_are_one_line_and_exit_2(plot_script, argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        plot_script.main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_plot_script_help_loads_no_torch():
    code, output, loaded = run_help("plot_training.py", modules=("torch", "matplotlib"))
    assert code == 0 and "--accuracy_reward" in output and not any(loaded.values())
