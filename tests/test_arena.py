"""The CPU arena: task generator vs. the real reward, and a shortened end-to-end arena run."""

import json

import pytest

from real_trl.arena import (
    LEVELS,
    ArenaConfig,
    build_splits,
    choose_learning_rates,
    markdown_table,
    merge_results,
    prompt_messages,
    reference_completion,
    rl_split,
    run_arena,
    summarize,
    warm_start,
    write_results,
)
from real_trl.rewards import make_math_reward


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
    assert reward([a for a in answers], answers) == [0.0] * len(problems)  # no \boxed{}, no answer


def test_splits_are_fixed_disjoint_and_mixed():
    train, heldout = build_splits(num_train=500, num_heldout=100, seed=0)
    again_train, again_heldout = build_splits(num_train=500, num_heldout=100, seed=0)
    assert (train, heldout) == (again_train, again_heldout)
    assert build_splits(num_train=500, num_heldout=100, seed=1)[1] != heldout
    assert not {p["question"] for p in train} & {p["question"] for p in heldout}
    assert len({p["question"] for p in heldout}) == 100
    assert {p["level"] for p in heldout} == set(LEVELS)
    for p in heldout:  # the answer is the value of the question
        assert int(p["answer"]) == eval(p["question"])  # noqa: S307 - our own digits and + - *
    assert prompt_messages("3+4") == [{"role": "user", "content": "3+4="}]


def test_rl_prompts_continue_the_warm_start_stream():
    cfg = ArenaConfig(num_train=200, num_rl_train=300, num_heldout=50)
    sft_train, heldout = build_splits(200, 50, cfg.task_seed)
    rl_train, rl_heldout = rl_split(cfg)
    assert rl_heldout == heldout and len(rl_train) == 300
    assert build_splits(500, 50, cfg.task_seed)[0] == sft_train + rl_train


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


def test_short_arena_run_writes_table_json_and_figure(tmp_path, monkeypatch):
    cfg = ArenaConfig(
        num_train=64, num_heldout=10, hidden_size=32, sft_steps=8, sft_batch_size=16,
        methods=("real", "grpo"), seeds=(0,), learning_rates=(1e-4,), max_steps=4,
        prompts_per_step=2, num_generations=4, steps_per_generation=2, eval_every=2, eval_samples=2,
    )  # fmt: skip
    results = run_arena(cfg, cache_dir=tmp_path / "cache", progress=False)
    paths = write_results(results, tmp_path / "out")

    table = paths["table"].read_text()
    assert "| warm start (SFT) |" in table
    assert "| real | 0.0001 |" in table and "| grpo | 0.0001 |" in table
    assert table == markdown_table(results)

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
    import real_trl.tiny

    monkeypatch.setattr(real_trl.tiny, "build_tiny_model", lambda **_: pytest.fail("warm start was retrained"))
    path, info = warm_start(cfg, cache_dir=tmp_path / "cache")
    assert info == data["warm_start"] and (path / "config.json").exists()


def test_warm_start_habits_are_what_the_verifier_rejects():
    import random

    from real_trl.arena import ArenaConfig, warm_start_target
    from real_trl.rewards import make_math_reward

    cfg = ArenaConfig(sft_unboxed=0.3, sft_off_by_one=0.2)
    rng = random.Random(0)
    targets = [warm_start_target("12", rng, cfg) for _ in range(2000)]
    shares = {t: targets.count(t) / len(targets) for t in set(targets)}
    assert set(shares) == {"12", "\\boxed{13}", "\\boxed{12}"}
    assert abs(shares["12"] - 0.3) < 0.04 and abs(shares["\\boxed{13}"] - 0.2) < 0.04
    reward = make_math_reward(require_think=False)
    assert reward(["12", "\\boxed{13}", "\\boxed{12}"], ["12"] * 3) == [0.0, 0.0, 1.0]
