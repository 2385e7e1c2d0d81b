"""The arena's report: the summary over seeds, the learning-rate choice, and the table, JSON and figure
written from a result of `real_trl.arena.runs.run_arena`."""

from __future__ import annotations

import json
import math
from pathlib import Path

from real_trl.arena.settings import METHODS


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _tail_mean(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    k = max(1, round(len(values) * fraction))
    return sum(values[-k:]) / k


def _summary_row(method: str, lr: float, group: list[dict], threshold: float) -> dict:
    reached = []
    for r in group:
        hits = [s for s, v in zip(r["eval"]["step"], r["eval"]["sampled"], strict=True) if v >= threshold and s > 0]
        if hits:
            reached.append(hits[0])
    sampled = _mean_std([r["eval"]["sampled"][-1] for r in group])
    greedy = _mean_std([r["eval"]["greedy"][-1] for r in group])
    return {
        "method": method,
        "learning_rate": lr,
        "seeds": len(group),
        "sampled_mean": sampled[0],
        "sampled_std": sampled[1],
        "greedy_mean": greedy[0],
        "greedy_std": greedy[1],
        "steps_to_threshold": sum(reached) / len(reached) if reached else None,
        "seeds_reaching_threshold": len(reached),
        # "end" = the last 10% of logged steps (entropy) / the last 25% of generation batches (reward)
        "entropy_end": sum(_tail_mean(r["train"]["entropy"]["value"], 0.1) for r in group) / len(group),
        "train_reward_end": sum(_tail_mean(r["train"]["reward"]["value"], 0.25) for r in group) / len(group),
        "wall_s": sum(r["wall_s"] for r in group),
    }


def summarize(runs: list[dict], threshold: float) -> list[dict]:
    """One row per (method, learning rate): final held-out scores over seeds, steps to threshold, end entropy."""
    keys = sorted({(r["method"], r["learning_rate"]) for r in runs}, key=lambda k: (list(METHODS).index(k[0]), k[1]))
    return [
        _summary_row(method, lr, [r for r in runs if r["method"] == method and r["learning_rate"] == lr], threshold)
        for method, lr in keys
    ]


def choose_learning_rates(summary: list[dict]) -> dict[str, float]:
    """Per method, the learning rate with the highest final *training* reward (held-out data never picks)."""
    best: dict[str, dict] = {}
    for row in summary:
        if row["method"] not in best or row["train_reward_end"] > best[row["method"]]["train_reward_end"]:
            best[row["method"]] = row
    return {m: row["learning_rate"] for m, row in best.items()}


def merge_results(parts: list[dict]) -> dict:
    """One result from arena runs made in separate processes with the same settings apart from methods,
    seeds and learning rates (e.g. two halves run side by side); wall time is the longest part's."""
    first = parts[0]
    runs = [run for part in parts for run in part["runs"]]
    for part in parts[1:]:
        if part["warm_start"] != first["warm_start"]:
            raise ValueError("Cannot merge arena results from different warm starts; rerun with the same settings.")
    config = dict(first["config"])
    for key in ("methods", "seeds", "learning_rates"):
        values = {v for part in parts for v in part["config"][key]}
        config[key] = sorted(values, key=list(METHODS).index) if key == "methods" else sorted(values)
    summary = summarize(runs, first["threshold"])
    return {
        **first,
        "config": config,
        "chosen_learning_rates": choose_learning_rates(summary),
        "summary": summary,
        "runs": runs,
        "wall_s": max(part["wall_s"] for part in parts),
    }


def _fmt(mean: float, std: float, seeds: int) -> str:
    return f"{mean:.3f} ± {std:.3f}" if seeds > 1 else f"{mean:.3f}"


def _table_row(r: dict) -> str:
    steps = "not reached" if r["steps_to_threshold"] is None else f"{r['steps_to_threshold']:.0f}"
    return (
        f"| {r['method']} | {r['learning_rate']:g} | {_fmt(r['sampled_mean'], r['sampled_std'], r['seeds'])} | "
        f"{_fmt(r['greedy_mean'], r['greedy_std'], r['seeds'])} | "
        f"{steps} ({r['seeds_reaching_threshold']}/{r['seeds']}) | "
        f"{r['entropy_end']:.3f} | {r['train_reward_end']:.3f} |\n"
    )


def markdown_table(results: dict) -> str:
    """The chosen learning rate of each method against the warm start, then (for a sweep) every rate."""
    cfg, warm, threshold = results["config"], results["warm_start"], results["threshold"]
    chosen = results["chosen_learning_rates"]
    header = (
        f"| method | lr | held-out Pass@1 (sampled, T={cfg['temperature']:g}) | held-out greedy | "
        f"steps to Pass@1 ≥ {threshold:.3f} (seeds) | entropy (end) | train reward (end) |\n"
        "| --- | --- | --- | --- | --- | --- | --- |\n"
    )
    warm_row = f"| warm start (SFT) | – | {warm['sampled']:.3f} | {warm['greedy']:.3f} | – | – | – |\n"
    best = [r for r in results["summary"] if chosen.get(r["method"]) == r["learning_rate"]]
    seeds = len(cfg["seeds"])
    text = (
        f"Held-out Pass@1 after {cfg['max_steps']} RL steps on {cfg['num_heldout']} unseen problems "
        f"({'mean ± std over ' + str(seeds) + ' seeds' if seeds > 1 else 'one seed'}; "
        f"{cfg['prompts_per_step']} prompts x {cfg['num_generations']} completions per step; "
        "learning rate chosen per method by final training reward).\n\n"
        + header
        + warm_row
        + "".join(map(_table_row, best))
    )
    if len(cfg["learning_rates"]) > 1:
        text += "\nEvery learning rate of the sweep:\n\n" + header + "".join(map(_table_row, results["summary"]))
    machine = results["machine"]
    when = f" ({machine['date']})" if "date" in machine else ""
    text += f"\nWall time: {results['wall_s'] / 60:.1f} min on {machine['cpus']} CPU cores{when}.\n"
    return text


def _smooth(values: list[float], window: int) -> list[float]:
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1) : i + 1]
        out.append(sum(chunk) / len(chunk))
    return out


_CURVE_PANELS = [
    ("held-out Pass@1 (sampled)", lambda r: (r["eval"]["step"], r["eval"]["sampled"])),
    ("held-out greedy accuracy", lambda r: (r["eval"]["step"], r["eval"]["greedy"])),
    ("entropy (train)", lambda r: (r["train"]["entropy"]["step"], _smooth(r["train"]["entropy"]["value"], 8))),
    ("reward (train)", lambda r: (r["train"]["reward"]["step"], _smooth(r["train"]["reward"]["value"], 3))),
]


def _draw_method(axis, runs: list[dict], get, label: str, linewidth: float) -> None:
    series = [get(r) for r in runs]
    length = min(len(s[1]) for s in series)
    steps = series[0][0][:length]
    stats = [_mean_std([s[1][i] for s in series]) for i in range(length)]
    axis.plot(steps, [m for m, _ in stats], label=label, linewidth=linewidth)
    if len(runs) > 1:
        axis.fill_between(steps, [m - s for m, s in stats], [m + s for m, s in stats], alpha=0.15)


def plot_curves(results: dict, path: str | Path) -> Path:
    """Held-out sampled / greedy Pass@1, entropy and training reward over steps (mean ± std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for ax, (title, get) in zip(axes.flat, _CURVE_PANELS, strict=True):
        for method, lr in results["chosen_learning_rates"].items():
            group = [r for r in results["runs"] if r["method"] == method and r["learning_rate"] == lr]
            _draw_method(ax, group, get, f"{method} (lr {lr:g})", 2 if method == "real" else 1.3)
        ax.set_title(title)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    axes[0, 0].axhline(results["threshold"], color="gray", linestyle=":", linewidth=1)
    axes[0, 0].legend(fontsize=8)
    seeds = len(results["config"]["seeds"])
    spread = f"{seeds} seeds, mean ± std" if seeds > 1 else "one seed"
    gain = results["config"]["threshold_gain"]
    fig.suptitle(f"Tiny-model arithmetic arena ({spread}; dotted line: warm start + {gain:g})")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_results(results: dict, output_dir: str | Path) -> dict[str, Path]:
    """`arena.md` (table), `arena.json` (settings, summary and every curve) and `arena.png` (figure)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"table": output_dir / "arena.md", "json": output_dir / "arena.json", "figure": output_dir / "arena.png"}
    paths["table"].write_text(markdown_table(results))
    paths["json"].write_text(json.dumps(results, indent=1))
    plot_curves(results, paths["figure"])
    return paths
