import json
import math
import sys
from pathlib import Path

import pytest
import torch

from real_trl.losses import real_gradient_weights
from real_trl.plots import gradient_magnitudes, load_log_history, plot_gradient_magnitudes, plot_training_dynamics


@pytest.fixture(scope="module")
def curves():
    return gradient_magnitudes(tau=0.5, epsilon=0.2, s_min=-2.0, s_max=2.0, num=41)


def test_real_gradients_are_bounded_and_monotone(curves):
    pos, neg = curves["real_positive"], curves["real_negative"]
    assert max(pos + neg) < 1 / 0.5
    assert all(a > b for a, b in zip(pos, pos[1:]))  # a positive that already rose gets less weight
    assert all(a < b for a, b in zip(neg, neg[1:]))  # a negative that rose gets more
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
    for s, pos, neg in zip(curves["s"], curves["grpo_positive"], curves["grpo_negative"]):
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


def write_run(directory, eval_key, entropy):
    history = []
    for step in (1, 2, 3):
        history.append({"step": step, "entropy": entropy * step, "reward": 0.1 * step, "groups/solve_all": 0.05 * step})
        if step != 2:
            history.append({"step": step, eval_key: 0.2 * step})
    directory.mkdir(parents=True)
    (directory / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    return directory


def test_training_dynamics(tmp_path):
    real = write_run(tmp_path / "real" / "checkpoint-3", "eval_reward", 0.25).parent
    (tmp_path / "real" / "checkpoint-1").mkdir()  # older, without a state: the latest one is read
    grpo = write_run(tmp_path / "grpo", "eval_rewards/math_reward/mean", 0.1)
    out = tmp_path / "fig4.png"
    data = plot_training_dynamics({"REAL": real, "GRPO": grpo / "trainer_state.json"}, out)
    assert out.stat().st_size > 1000
    panels = {p["title"]: p for p in data["panels"]}
    assert list(panels) == ["Entropy", "Validation Pass@1", "Training reward", "Solve-all ratio"]
    assert panels["Entropy"]["series"]["REAL"] == ([1, 2, 3], [0.25, 0.5, 0.75])
    assert panels["Validation Pass@1"]["series"]["REAL"] == ([1, 3], [0.2, pytest.approx(0.6)])
    assert panels["Validation Pass@1"]["series"]["GRPO"] == ([1, 3], [0.2, pytest.approx(0.6)])
    assert panels["Solve-all ratio"]["series"]["GRPO"][1] == pytest.approx([0.05, 0.1, 0.15])
    assert all(p["xlabel"] == "step" for p in panels.values())


def test_missing_runs(tmp_path):
    with pytest.raises(FileNotFoundError, match="trainer_state.json"):
        load_log_history(tmp_path)
    with pytest.raises(ValueError, match="No runs"):
        plot_training_dynamics({}, tmp_path / "x.png")


def test_plot_script(tmp_path, monkeypatch):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import plot_training

    run = write_run(tmp_path / "run", "eval_reward", 0.2)
    monkeypatch.setattr(sys, "argv", ["x", "--run", f"REAL={run}", "--output", str(tmp_path / "a.png")])
    plot_training.main()
    assert (tmp_path / "a.png").stat().st_size > 1000
