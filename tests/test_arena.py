"""The CPU arena: task generator vs. the real reward, the summary, a shortened end-to-end run, and the
command lines of scripts/arena.py and scripts/demo.py."""

import json
import random
import subprocess
from pathlib import Path

import pytest

import real_trl.arena.runs
import real_trl.arena.sft
from real_trl.arena.heldout import habit_shares
from real_trl.arena.report import choose_learning_rates, markdown_table, merge_results, summarize, write_results
from real_trl.arena.runs import run_arena
from real_trl.arena.settings import ArenaConfig
from real_trl.arena.sft import warm_start, warm_start_target
from real_trl.arena.task import LEVELS, build_splits, prompt_messages, reference_completion, rl_split
from real_trl.rewards import make_math_reward

from helpers import run_help

ROOT = Path(__file__).resolve().parents[1]
SHORT = ArenaConfig(
    num_train=64, num_heldout=10, hidden_size=32, sft_steps=8, sft_batch_size=16,
    methods=("real", "grpo"), seeds=(0,), learning_rates=(1e-4,), max_steps=4,
    prompts_per_step=2, num_generations=4, steps_per_generation=2, eval_every=2, eval_samples=2,
)  # fmt: skip


@pytest.fixture(scope="module")
def scripts(tmp_path_factory):
    """scripts/arena.py and scripts/demo.py as modules (imported once; sys.path restored afterwards)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT / "scripts"))
        import arena
        import demo

        yield {"arena": arena, "demo": demo}


@pytest.fixture(scope="module")
def short_arena(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return run_arena(SHORT, cache_dir=cache, progress=False), cache


def test_every_reference_scores_one_and_a_perturbed_one_zero():
    train, heldout = build_splits(num_train=300, num_heldout=100, seed=3)
    problems = train + heldout
    reward = make_math_reward(require_think=False)
    answers = [p["answer"] for p in problems]
    assert reward([reference_completion(a) for a in answers], answers) == [1.0] * len(problems)
    # TRL hands conversational completions to the reward as message lists
    conversational = [[{"role": "assistant", "content": reference_completion(a)}] for a in answers]
    assert reward(conversational, answers) == [1.0] * len(problems)
    perturbed = [reference_completion(str(int(a) + 1)) for a in answers]
    assert reward(perturbed, answers) == [0.0] * len(problems)
    assert reward(list(answers), answers) == [0.0] * len(problems)  # no \boxed{}, no answer


def test_splits_are_fixed_disjoint_and_mixed():
    train, heldout = build_splits(num_train=500, num_heldout=100, seed=0)
    again_train, again_heldout = build_splits(num_train=500, num_heldout=100, seed=0)
    assert (train, heldout) == (again_train, again_heldout)
    assert build_splits(num_train=500, num_heldout=100, seed=1)[1] != heldout
    assert not {p["question"] for p in train} & {p["question"] for p in heldout}
    assert len({p["question"] for p in heldout}) == 100
    assert {p["level"] for p in heldout} == set(LEVELS)
    for p in heldout:  # the answer is the value of the question
        assert int(p["answer"]) == eval(p["question"])  # our own digits and + - *
    assert prompt_messages("3+4") == [{"role": "user", "content": "3+4="}]
    with pytest.raises(ValueError, match="distinct problems; ask for fewer"):
        build_splits(num_train=1, num_heldout=1000)  # add1 has only 100 distinct questions


def test_rl_prompts_continue_the_warm_start_stream():
    cfg = ArenaConfig(num_train=200, num_rl_train=300, num_heldout=50)
    sft_train, heldout = build_splits(200, 50, cfg.task_seed)
    rl_train, rl_heldout = rl_split(cfg)
    assert rl_heldout == heldout and len(rl_train) == 300
    assert build_splits(500, 50, cfg.task_seed)[0] == sft_train + rl_train


def test_warm_start_cache_key_follows_the_warm_start_fields_only():
    cfg = ArenaConfig()
    assert cfg.cache_key() == ArenaConfig(methods=("real",), max_steps=3, seeds=(5,)).cache_key()
    assert cfg.cache_key() != ArenaConfig(sft_lr=1e-3).cache_key()


def _run(method, lr, seed, sampled, reward):
    return {
        "method": method,
        "learning_rate": lr,
        "seed": seed,
        "wall_s": 1.0,
        "eval": {"step": [0, 10, 20], "greedy": sampled, "sampled": sampled},
        "train": {
            "reward": {"step": [1, 5, 9], "value": [0.1, 0.2, reward]},
            "entropy": {"step": [1, 2], "value": [0.5, 0.3]},
            "groups_with_signal": {"step": [1], "value": [0.5]},
        },
    }


def test_summary_threshold_and_learning_rate_choice():
    runs = [
        _run("real", 1e-4, 0, [0.2, 0.3, 0.4], reward=0.9),
        _run("real", 1e-4, 1, [0.2, 0.2, 0.4], reward=0.7),
        _run("real", 3e-4, 0, [0.2, 0.5, 0.5], reward=0.1),  # best held-out, worst train reward
        _run("grpo", 1e-4, 0, [0.2, 0.2, 0.2], reward=0.5),
    ]
    rows = {(r["method"], r["learning_rate"]): r for r in summarize(runs, threshold=0.25)}
    real = rows[("real", 1e-4)]
    assert real["sampled_mean"] == pytest.approx(0.4) and real["sampled_std"] == pytest.approx(0.0)
    assert real["steps_to_threshold"] == pytest.approx(15.0) and real["seeds_reaching_threshold"] == 2
    assert real["entropy_end"] == pytest.approx(0.3)
    assert rows[("grpo", 1e-4)]["steps_to_threshold"] is None
    # held-out data never picks the learning rate: training reward does
    assert choose_learning_rates(list(rows.values())) == {"real": 1e-4, "grpo": 1e-4}


def test_merge_joins_halves_run_side_by_side():
    warm = {"greedy": 0.3, "sampled": 0.2}

    def half(methods, runs):
        config = {"methods": methods, "seeds": [0], "learning_rates": [1e-4]}
        return {"config": config, "warm_start": warm, "threshold": 0.25, "runs": runs, "wall_s": len(runs)}

    merged = merge_results([half(["grpo"], [_run("grpo", 1e-4, 0, [0.2, 0.2, 0.3], 0.5)]),
                            half(["real"], [_run("real", 1e-4, 0, [0.2, 0.3, 0.4], 0.6)] * 2)])  # fmt: skip
    assert merged["config"]["methods"] == ["real", "grpo"]  # METHODS order
    assert [r["method"] for r in merged["summary"]] == ["real", "grpo"]
    assert merged["wall_s"] == 2
    with pytest.raises(ValueError, match="different warm starts"):
        merge_results([half(["real"], []), {**half(["grpo"], []), "warm_start": {"greedy": 0.1}}])


def test_short_arena_run_writes_table_json_and_figure(short_arena, tmp_path, monkeypatch):
    results, cache = short_arena
    paths = write_results(results, tmp_path / "out")

    table = paths["table"].read_text()
    assert "| warm start (SFT) |" in table
    assert "| real | 0.0001 |" in table and "| grpo | 0.0001 |" in table
    assert table == markdown_table(results)
    assert f"CPU cores ({results['machine']['date']})." in table

    data = json.loads(paths["json"].read_text())
    assert [(r["method"], r["seed"]) for r in data["runs"]] == [("real", 0), ("grpo", 0)]
    for run in data["runs"]:
        assert run["eval"]["step"] == [0, 2, 4]
        assert all(0.0 <= v <= 1.0 for v in run["eval"]["sampled"] + run["eval"]["greedy"])
        assert run["train"]["entropy"]["step"] == [1, 2, 3, 4]  # logged every step, REAL and TRL alike
        assert len(run["train"]["reward"]["value"]) == 2  # one per generation batch
    assert data["chosen_learning_rates"] == {"real": 1e-4, "grpo": 1e-4}
    assert paths["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The warm start is cached: a second call trains nothing.
    monkeypatch.setattr(real_trl.arena.sft, "build_tiny_model", lambda *a, **k: pytest.fail("warm start was retrained"))
    path, info = warm_start(SHORT, cache_dir=cache)
    assert info == data["warm_start"] and (path / "config.json").exists()


@pytest.mark.parametrize("record", ["arena", "demo"])
def test_committed_tables_are_what_the_report_writes_from_their_json(record):
    folder = ROOT / "results" / record
    results = json.loads((folder / "arena.json").read_text())
    assert markdown_table(results) == (folder / "arena.md").read_text()


def test_warm_start_habits_are_what_the_verifier_rejects():
    cfg = ArenaConfig(sft_unboxed=0.3, sft_off_by_one=0.2)
    rng = random.Random(0)
    targets = [warm_start_target("12", rng, cfg) for _ in range(2000)]
    shares = {t: targets.count(t) / len(targets) for t in set(targets)}
    assert set(shares) == {"12", "\\boxed{13}", "\\boxed{12}"}
    assert abs(shares["12"] - 0.3) < 0.04 and abs(shares["\\boxed{13}"] - 0.2) < 0.04
    reward = make_math_reward(require_think=False)
    assert reward(["12", "\\boxed{13}", "\\boxed{12}"], ["12"] * 3) == [0.0, 0.0, 1.0]


# ---------------------------------------------------------------------------------------------------
# The scripts


def test_demo_prints_held_out_accuracy_before_and_after(scripts, short_arena, tmp_path, monkeypatch, capsys):
    results, _ = short_arena
    asked = {}

    def fake_run_arena(cfg, cache_dir=None, **kwargs):
        asked.update(max_steps=cfg.max_steps, methods=cfg.methods, cache_dir=cache_dir)
        return results

    monkeypatch.setattr(real_trl.arena.runs, "run_arena", fake_run_arena)
    scripts["demo"].main(["--max_steps", "4", "--output_dir", str(tmp_path / "demo"), "--cache_dir", "c"])
    assert asked == {"max_steps": 4, "methods": ("real",), "cache_dir": "c"}
    out = capsys.readouterr().out
    before, after = results["warm_start"], results["runs"][0]["eval"]
    for key, label in (("unboxed", "without \\boxed{}"), ("off_by_one", "off by one"), ("greedy", "greedy")):
        line = next(line for line in out.splitlines() if label in line)
        assert f"{before[key]:.3f} -> {after[key][-1]:.3f}" in line
        moved_as_rl_should = after[key][-1] > before[key] if key == "greedy" else after[key][-1] < before[key]
        assert line.endswith(("rose", "dropped")) == moved_as_rl_should, line
    assert "the directions are what to check" in out
    assert (tmp_path / "demo" / "arena.md").exists()


def test_habits_are_measured_on_what_the_verifier_sees():
    shares = habit_shares(["\\boxed{13}", "12", "\\boxed{12}", "the answer is \\boxed{13}"], ["12"] * 4)
    assert shares == {"unboxed": 0.25, "off_by_one": 0.5}


def test_default_outputs_are_git_ignored_and_untracked(scripts):
    defaults = [scripts["arena"].ArenaArguments().output_dir, scripts["demo"].DemoArguments().output_dir]
    assert all(Path(d).parts[0] == "outputs" for d in defaults)
    try:
        ignored = subprocess.run(
            ["git", "check-ignore", *defaults], cwd=ROOT, check=False, capture_output=True, text=True
        )
        tracked = subprocess.run(["git", "ls-files", *defaults], cwd=ROOT, check=False, capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("git is not installed")
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    assert ignored.stdout.split() == defaults
    assert tracked.stdout == ""


@pytest.mark.parametrize(
    "script, argv, message",
    [
        ("arena", ["--methods", "real", "sft"], "error: unknown method(s) sft; choose from real, bce,"),
        ("arena", ["--merge", "nowhere"], "error: no arena.json in nowhere; pass the --output_dir"),
        ("arena", ["--seeds", "one"], "error: argument --seeds: invalid int value: 'one'"),
        ("demo", ["--max_steps", "0"], "error: --max_steps must be at least 1, got 0"),
        ("demo", ["--steps", "10"], "error: Some specified arguments are not used"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(scripts, script, argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        scripts[script].main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


@pytest.mark.parametrize("script", ["arena.py", "demo.py"])
def test_help_loads_no_torch(script):
    code, output, loaded = run_help(script)
    assert code == 0 and "--output_dir" in output and not loaded["torch"]
