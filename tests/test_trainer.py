import pytest
import torch
from datasets import Dataset

from real_trl import REALConfig, REALTrainer
from real_trl.tiny import build_tiny_model, build_tiny_tokenizer


def parity_reward(completions, **kwargs):
    return [float(len(c[0]["content"]) % 2) for c in completions]


def dataset(n=16):
    return Dataset.from_dict({"prompt": [[{"role": "user", "content": f"What is {i} + {i}?"}] for i in range(n)]})


def make_trainer(tmp_path, loss_type="real", reward_funcs=(parity_reward,), model=None, eval_dataset=None, **overrides):
    tokenizer = build_tiny_tokenizer()
    built = build_tiny_model(tokenizer, seed=0)
    model = model or built
    settings = dict(
        output_dir=str(tmp_path),
        loss_type=loss_type,
        per_device_train_batch_size=4,
        num_generations=4,
        gradient_accumulation_steps=2,
        steps_per_generation=4,
        max_completion_length=12,
        max_steps=2,
        learning_rate=1e-2,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        use_cpu=True,
        bf16=False,
        disable_tqdm=True,
    )
    settings.update(overrides)
    return REALTrainer(
        model=model,
        reward_funcs=list(reward_funcs),
        args=REALConfig(**settings),
        train_dataset=dataset(),
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
    )


@pytest.mark.parametrize("loss_type", ["real", "real_product", "bce", "grpo", "dapo"])
def test_a_few_training_steps(tmp_path, loss_type):
    trainer = make_trainer(tmp_path, loss_type)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 2 and all(torch.isfinite(torch.tensor(float(e["loss"]))) for e in logs)
    first = trainer.state.log_history[0]
    for key in ("groups/solve_all", "groups/solve_none", "groups/with_signal", "entropy"):
        assert key in first
    real_keys = {"real/weight_pos", "real/weight_neg", "real/score_pos", "real/score_neg", "real/approx_kl"}
    if loss_type in ("real", "real_product", "bce"):
        assert real_keys <= first.keys()
    else:  # TRL's own loss ran: its clipping metrics, none of ours
        assert "clip_ratio/region_mean" in first and not real_keys & first.keys()


def test_micro_batches_hold_whole_groups_and_the_whole_generation_batch(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=1)
    trainer.train()
    micro_batches = trainer._buffered_inputs
    assert len(micro_batches) == 4
    seen = []
    for micro in micro_batches:
        _, counts = micro["real_group_ids"].unique(return_counts=True)
        assert (counts == 4).all()
        seen += micro["real_group_ids"].tolist()
        # padding columns nobody uses are trimmed
        assert micro["completion_mask"][:, -1].any() and micro["prompt_mask"][:, 0].any()
    assert sorted(set(seen)) == list(range(4))


def test_labels_follow_the_rewards(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=1)
    trainer.train()
    for micro in trainer._buffered_inputs:
        texts = trainer.processing_class.batch_decode(micro["completion_ids"] * micro["completion_mask"], skip_special_tokens=True)
        expected = [len(t) % 2 for t in texts]
        assert micro["real_labels"].tolist() == expected


def test_first_update_scores_are_zero_and_later_ones_move(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=2)
    trainer.train()
    first, second = (e for e in trainer.state.log_history if "loss" in e)
    assert first["real/score_pos"] == pytest.approx(0.0, abs=1e-6)
    assert first["real/approx_kl"] == pytest.approx(0.0, abs=1e-6)
    assert second["real/approx_kl"] > 0


def test_missing_reward_functions_fail_before_loading_anything(tmp_path):
    with pytest.raises(ValueError, match="pass reward_funcs"):
        REALTrainer(model="no/such-model", reward_funcs=None, args=REALConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True))


def test_kl_to_reference_and_entropy_bonus_run(tmp_path, tiny_model_dir):
    # beta > 0 loads a reference copy of the model by path, as TRL does
    trainer = make_trainer(tmp_path, model=str(tiny_model_dir), beta=0.1, entropy_coef=0.01, max_steps=2)
    trainer.train()
    assert "kl" in trainer.state.log_history[1]


def test_evaluation_during_training_reports_group_outcomes(tmp_path):
    trainer = make_trainer(
        tmp_path, max_steps=2, eval_strategy="steps", eval_steps=2, per_device_eval_batch_size=4,
        num_generations_eval=2, eval_dataset=dataset(4),
    )
    trainer.train()
    evaluation = next(e for e in trainer.state.log_history if "eval_loss" in e)
    assert {"eval_reward", "eval_groups/with_signal", "eval_real/score_pos"} <= evaluation.keys()
