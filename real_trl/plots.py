"""Figures: training dynamics of runs (the paper's Figure 4) and gradient magnitudes (its Figure 3).

Each plotting function writes a PNG and returns the data it plotted (titles, axis labels, series), so
tests and users can check the numbers rather than pixels.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files, never to a window
import matplotlib.pyplot as plt
import torch
from matplotlib.ticker import MaxNLocator
from trl import GRPOTrainer

from real_trl.losses import real_loss

__all__ = [
    "TRAINING_PANELS",
    "accuracy_reward_name",
    "gradient_magnitudes",
    "load_log_history",
    "plot_gradient_magnitudes",
    "plot_training_dynamics",
    "training_series",
]

# (title, log key): "{accuracy}" is the logged name of the accuracy reward function. TRL logs every reward
# function on its own (`rewards/<name>/mean`) next to their weighted sum (`reward`); the accuracy panels
# plot the accuracy reward alone, since the sum also counts format or length rewards.
TRAINING_PANELS = [
    ("Entropy", "entropy"),
    ("Validation accuracy", "eval_rewards/{accuracy}/mean"),
    ("Training accuracy", "rewards/{accuracy}/mean"),
    ("Solve-all ratio", "groups/solve_all"),
]

# Runs drawn on one panel cycle through these, so runs with identical curves stay visible and tellable apart.
_LINE_STYLES = ["-", "--", ":", "-."]
_MARKERS = ["o", "s", "^", "D", "v"]
_MAX_MARKED_POINTS = 40  # denser series are drawn as lines only


def load_log_history(run: str | Path) -> list[dict]:
    """`log_history` from a trainer_state.json, or from a run directory (its own file or its latest checkpoint's)."""
    path = Path(run)
    if path.is_dir():
        candidates = [
            path / "trainer_state.json",
            *sorted(
                path.glob("checkpoint-*/trainer_state.json"),
                key=lambda p: int(p.parent.name.split("-")[-1]),
                reverse=True,
            ),
        ]
        found = [c for c in candidates if c.exists()]
        if not found:
            raise FileNotFoundError(f"No trainer_state.json in {path} or its checkpoint-* folders.")
        path = found[0]
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; pass a run's output directory or its trainer_state.json.")
    return json.loads(path.read_text())["log_history"]


def accuracy_reward_name(log_history: list[dict], accuracy_reward: str = "math_reward") -> str | None:
    """The logged name of the reward function whose name contains `accuracy_reward` (None if the run logged
    none); of several, the shortest (`math_reward` before `math_reward_strict`)."""
    names = {
        key.split("/")[1]
        for entry in log_history
        for key in entry
        if key.startswith(("rewards/", "eval_rewards/")) and key.endswith("/mean") and key.count("/") == 2
    }
    matching = sorted((n for n in names if accuracy_reward in n), key=lambda n: (len(n), n))
    return matching[0] if matching else None


def training_series(log_history: list[dict], accuracy_reward: str = "math_reward") -> dict[str, dict]:
    """For each panel title, the log key it plots and the run's (steps, values) of that key (empty if not logged)."""
    accuracy = accuracy_reward_name(log_history, accuracy_reward) or accuracy_reward
    series = {}
    for title, template in TRAINING_PANELS:
        key = template.format(accuracy=accuracy)
        points = [(e["step"], e[key]) for e in log_history if e.get(key) is not None]
        series[title] = {"key": key, "steps": [s for s, _ in points], "values": [v for _, v in points]}
    return series


def _draw_panel(axis, title: str, per_run: dict[str, dict]) -> dict:
    """One panel, runs overlaid; returns what it drew."""
    drawn = {label: runs[title] for label, runs in per_run.items() if runs[title]["steps"]}
    for index, (label, run) in enumerate(drawn.items()):
        marked = len(run["steps"]) <= _MAX_MARKED_POINTS
        axis.plot(
            run["steps"],
            run["values"],
            label=label,
            linewidth=1.2,
            linestyle=_LINE_STYLES[index % len(_LINE_STYLES)],
            marker=_MARKERS[index % len(_MARKERS)] if marked else None,
            markersize=4,
            markerfacecolor="none",  # hollow markers: a run's marker does not hide another's at the same point
        )
    keys = sorted({run[title]["key"] for run in per_run.values()})
    ylabel = " / ".join(keys)
    axis.set(title=title, xlabel="step", ylabel=ylabel)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3)
    if drawn:
        axis.legend()
    else:
        axis.text(0.5, 0.5, f"{ylabel}\nnot logged", transform=axis.transAxes, ha="center", va="center", color="gray")
    series = {label: (run["steps"], run["values"]) for label, run in drawn.items()}
    return {"title": title, "xlabel": "step", "ylabel": ylabel, "series": series}


def plot_training_dynamics(
    runs: dict[str, str | Path], output: str | Path, accuracy_reward: str = "math_reward"
) -> dict:
    """Four panels over steps, runs overlaid: entropy, validation and training accuracy (the mean of the reward
    function whose name contains `accuracy_reward`, not the weighted sum of all rewards), solve-all ratio."""
    if not runs:
        raise ValueError("No runs given: pass at least one LABEL=path/to/run.")
    per_run = {label: training_series(load_log_history(path), accuracy_reward) for label, path in runs.items()}
    figure, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    panels = [_draw_panel(axis, title, per_run) for axis, (title, _) in zip(axes.flat, TRAINING_PANELS, strict=True)]
    figure.tight_layout()
    _save(figure, output)
    return {"panels": panels, "output": str(output)}


# ----------------------------------------------------------------------------------------------
# Figure 3: |dJ/ds| against s, by autograd through the losses themselves.


def _real_gradients(s, tau: float, label: int):
    """|dL/ds| of one sample in REAL's own loss, in a group where the sample's sibling (the other class) sits at s=0.

    real_loss divides by the number of groups; with one group that factor is 1, so this is the
    paper's per-sample weight W.
    """
    grads = []
    for value in s.tolist():
        score = torch.tensor([value, 0.0], dtype=torch.float64, requires_grad=True)
        labels = torch.tensor([label, 1 - label])
        real_loss(score, labels, torch.zeros(2, dtype=torch.long), tau).backward()
        grads.append(abs(score.grad[0].item()))
    return grads


def _trl_grpo_gradients(s, advantage: float, epsilon_low: float, epsilon_high: float):
    """|dJ/ds| of GRPO's clipped objective for a one-token completion with log-ratio s, through TRL's own
    `GRPOTrainer._compute_loss` (on a stand-in trainer holding only the settings that loss reads)."""
    per_token_logps = torch.tensor(s.tolist(), dtype=torch.float64).unsqueeze(1).requires_grad_(True)
    size = per_token_logps.size(0)

    class Accelerator:
        num_processes = 1
        sync_gradients = True
        gather = gather_for_metrics = staticmethod(lambda x: x)
        reduce = staticmethod(lambda x, reduction="sum": x)

    stand_in = SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *a, **k: (per_token_logps, torch.zeros_like(per_token_logps), None),
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        importance_sampling_level="token",
        beta=0.0,
        loss_type="grpo",
        epsilon_low=epsilon_low,
        epsilon_high=epsilon_high,
        args=SimpleNamespace(delta=None),
        use_vllm=False,
        model=SimpleNamespace(training=False),
        _entropy_bonus_enabled=False,
        aux_loss_enabled=False,
        accelerator=Accelerator(),
        _metrics=defaultdict(lambda: defaultdict(list)),
    )
    inputs = {
        "prompt_ids": torch.zeros(size, 1, dtype=torch.long),
        "prompt_mask": torch.ones(size, 1, dtype=torch.long),
        "completion_ids": torch.zeros(size, 1, dtype=torch.long),
        "completion_mask": torch.ones(size, 1, dtype=torch.long),
        "advantages": torch.full((size,), advantage, dtype=torch.float64),
        "old_per_token_logps": torch.zeros(size, 1, dtype=torch.float64),  # so the token's log-ratio is s
    }
    loss = GRPOTrainer._compute_loss(stand_in, None, inputs)
    # The "grpo" loss averages over the batch; each row is an independent sample, so undo the mean.
    (loss * size).backward()
    return per_token_logps.grad.squeeze(1).abs().tolist()


def gradient_magnitudes(
    tau: float = 0.5, epsilon: float = 0.2, s_min: float = -2.0, s_max: float = 2.0, num: int = 201
) -> dict:
    """|dJ/ds| over s in [s_min, s_max] for a positive and a negative sample: REAL at `tau` and GRPO clipped at
    `epsilon` with advantage +1 / -1. REAL's gradients come from `real_trl.losses.real_loss`, GRPO's from TRL."""
    s = torch.linspace(s_min, s_max, num, dtype=torch.float64)
    return {
        "s": s.tolist(),
        "tau": tau,
        "epsilon": epsilon,
        "real_positive": _real_gradients(s, tau, label=1),
        "real_negative": _real_gradients(s, tau, label=0),
        "grpo_positive": _trl_grpo_gradients(s, +1.0, epsilon, epsilon),
        "grpo_negative": _trl_grpo_gradients(s, -1.0, epsilon, epsilon),
    }


def plot_gradient_magnitudes(output: str | Path, tau: float = 0.5, epsilon: float = 0.2, **grid) -> dict:
    """The paper's Figure 3: a positive (left) and a negative (right) sample, REAL vs GRPO's clipped objective."""
    data = gradient_magnitudes(tau=tau, epsilon=epsilon, **grid)
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    panels = []
    for axis, kind in zip(axes, ("positive", "negative"), strict=True):
        series = {f"REAL (tau={tau})": data[f"real_{kind}"], f"GRPO (clip eps={epsilon})": data[f"grpo_{kind}"]}
        for label, values in series.items():
            axis.plot(data["s"], values, label=label, linewidth=1.5)
        title = f"{kind.capitalize()} sample"
        axis.set(title=title, xlabel="s (token-mean log-ratio)", ylabel="|dJ/ds|")
        axis.grid(alpha=0.3)
        axis.legend()
        panels.append(
            {
                "title": title,
                "xlabel": "s (token-mean log-ratio)",
                "ylabel": "|dJ/ds|",
                "s": data["s"],
                "series": series,
            }
        )
    figure.tight_layout()
    _save(figure, output)
    return {"panels": panels, "output": str(output), **data}


def _save(figure, output: str | Path) -> None:
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=120)
    plt.close(figure)
