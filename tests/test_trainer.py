import pytest
import torch
from datasets import Dataset
from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM
from trl import GRPOTrainer
from trl.trainer.utils import shuffle_sequence_dict, split_tensor_dict

from real_trl import REALConfig, REALTrainer
from real_trl.tiny import build_tiny_model, build_tiny_tokenizer

from helpers import parity_reward, prompts, rollout, tiny_run_settings


def make_trainer(tmp_path, loss_type="real", reward_funcs=(parity_reward,), model=None, eval_dataset=None, **overrides):
    tokenizer = build_tiny_tokenizer()
    built = build_tiny_model(tokenizer, seed=0)
    model = model or built
    settings = tiny_run_settings(tmp_path, **{"loss_type": loss_type, "learning_rate": 1e-2, **overrides})
    return REALTrainer(
        model=model,
        reward_funcs=list(reward_funcs),
        args=REALConfig(**settings),
        train_dataset=prompts(),
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
    )


@pytest.mark.parametrize("loss_type", ["real", "real_product", "bce", "grpo", "dapo"])
def test_a_few_training_steps(tmp_path, loss_type):
    trainer = make_trainer(tmp_path, loss_type)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))
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
    trainer = make_trainer(tmp_path, max_steps=1, skip_no_signal=False)
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
    trainer = make_trainer(tmp_path, max_steps=1, skip_no_signal=False)
    trainer.train()
    for micro in trainer._buffered_inputs:
        texts = trainer.processing_class.batch_decode(
            micro["completion_ids"] * micro["completion_mask"], skip_special_tokens=True
        )
        expected = [len(t) % 2 for t in texts]
        assert micro["real_labels"].tolist() == expected


def test_first_update_scores_are_zero_and_later_ones_move(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=2)
    trainer.train()
    first, second = (e for e in trainer.state.log_history if "loss" in e)
    assert first["real/score_pos"] == pytest.approx(0.0, abs=1e-6)
    assert first["real/approx_kl"] == pytest.approx(0.0, abs=1e-6)
    assert second["real/approx_kl"] > 0


def test_missing_reward_functions_fail_with_grpo_trainers_error(tmp_path):
    with pytest.raises(ValueError, match="No reward source provided"):
        make_trainer(tmp_path, reward_funcs=())


def test_kl_to_reference_runs(tmp_path, tiny_model_dir):
    # beta > 0 loads a reference copy of the model by path, as TRL does
    trainer = make_trainer(tmp_path, model=str(tiny_model_dir), beta=0.1, max_steps=2)
    trainer.train()
    assert trainer.state.log_history[1]["kl"] > 0


def test_evaluation_during_training_reports_group_outcomes(tmp_path):
    trainer = make_trainer(
        tmp_path,
        max_steps=2,
        eval_strategy="steps",
        eval_steps=2,
        per_device_eval_batch_size=4,
        num_generations_eval=2,
        eval_dataset=prompts(4),
    )
    trainer.train()
    evaluation = next(e for e in trainer.state.log_history if "eval_loss" in e)
    assert {"eval_reward", "eval_groups/with_signal", "eval_real/score_pos"} <= evaluation.keys()


def _trained_parameters(trainer) -> list[torch.Tensor]:
    trainer.train()
    return [p.detach().clone() for p in trainer.model.parameters()]


def test_skipping_trains_only_rows_with_signal(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=1)
    trainer.train()
    trained = [m for m in trainer._buffered_inputs if "real_placeholder" not in m]
    labels = torch.cat([m["real_labels"] for m in trained])
    groups = torch.cat([m["real_group_ids"] for m in trained])
    for group in groups.unique():  # every trained group has a positive and a negative, and no excluded row
        assert set(labels[groups == group].tolist()) == {0, 1}
    skipped = trainer.state.log_history[0]["real/rows_skipped"]
    assert skipped == pytest.approx(1 - labels.numel() / 16)


def test_entropy_bonus_changes_the_update_and_is_reported(tmp_path):
    plain = _trained_parameters(make_trainer(tmp_path / "plain", max_steps=2))
    trainer = make_trainer(tmp_path / "bonus", max_steps=2, entropy_coef=0.5)
    with_bonus = _trained_parameters(trainer)
    assert any(not torch.allclose(a, b) for a, b in zip(plain, with_bonus, strict=True))
    logs = trainer.state.log_history[0]
    assert logs["entropy_coef"] == 0.5 and "policy_loss" in logs


def test_adaptive_entropy_and_high_entropy_tokens_train(tmp_path):
    trainer = make_trainer(
        tmp_path, max_steps=2, use_adaptive_entropy=True, entropy_target=10.0, top_entropy_quantile=0.5
    )
    before = [p.detach().clone() for p in trainer.model.parameters()]
    after = _trained_parameters(trainer)
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    # the entropy of a random model is below the target of 10, so the controller raises the coefficient
    assert trainer.state.log_history[1]["entropy_coef"] > trainer.state.log_history[0]["entropy_coef"]


def length_reward(completions, **kwargs):
    """A reward on another scale than 0/1, as in many TRL examples: every completion lands above 0.5."""
    return [float(len(c[0]["content"])) for c in completions]


def test_rewards_above_the_threshold_warn_and_group_mean_labels_learn(tmp_path):
    trainer = make_trainer(tmp_path / "threshold", reward_funcs=(length_reward,), max_steps=2, skip_no_signal=False)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    with pytest.warns(UserWarning, match="no group of the first generation batch has both"):
        after = _trained_parameters(trainer)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    trainer = make_trainer(tmp_path / "mean", reward_funcs=(length_reward,), max_steps=2, label_rule="group_mean")
    after = _trained_parameters(trainer)
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert trainer.state.log_history[0]["groups/with_signal"] > 0


def test_model_card_names_the_method_and_its_paper(tmp_path):
    for loss_type, name, paper in (("real", "REAL", "2602.05630"), ("grpo", "GRPO", "2402.03300")):
        trainer = make_trainer(tmp_path / loss_type, loss_type=loss_type)
        trainer.create_model_card(model_name="tiny")
        card = (tmp_path / loss_type / "README.md").read_text()
        assert f"trained with {name}" in card and paper in card, card


def test_trl_loss_types_get_no_real_inputs(tmp_path):
    trainer = make_trainer(tmp_path, loss_type="grpo", max_steps=1)
    trainer.train()
    assert not any(key.startswith("real_") for key in trainer._buffered_inputs[0])


# -- baselines with whole groups per optimizer step -------------------------------------------------------


def _generation_batch_and_micro_batches(tmp_path, loss_type: str, whole_groups: bool):
    """One generation batch of 8 prompts x 4 completions (deterministic rollouts), as GRPOTrainer returns it,
    and the 4 micro-batches (2 optimizer steps of 2) `_prepare_inputs` cuts it into."""
    trainer = REALTrainer(
        model=build_tiny_model(seed=0),
        reward_funcs=[parity_reward],
        args=REALConfig(
            output_dir=str(tmp_path), loss_type=loss_type, whole_groups_per_step=whole_groups,
            per_device_train_batch_size=8, num_generations=4, gradient_accumulation_steps=2, steps_per_generation=4,
            max_completion_length=12, report_to=[], use_cpu=True, bf16=False, seed=3,
        ),
        train_dataset=prompts(),
        processing_class=build_tiny_tokenizer(),
        rollout_func=rollout,
    )  # fmt: skip
    captured = {}
    generate = trainer._generate_and_score_completions
    trainer._generate_and_score_completions = lambda inputs: captured.setdefault("batch", generate(inputs))
    trainer.model.train()
    trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    return trainer, captured["batch"], trainer._buffered_inputs


def _rows(batch: dict) -> list[tuple]:
    """Each row as (prompt tokens, completion tokens), padding dropped: the identity of a sample."""
    return [
        (tuple(p[m.bool()].tolist()), tuple(c[n.bool()].tolist()))
        for p, m, c, n in zip(
            batch["prompt_ids"], batch["prompt_mask"], batch["completion_ids"], batch["completion_mask"], strict=True
        )
    ]


@pytest.mark.parametrize("loss_type", ["grpo", "dapo"])
def test_whole_groups_per_step_gives_every_optimizer_step_whole_groups(tmp_path, loss_type):
    _, batch, micro_batches = _generation_batch_and_micro_batches(tmp_path, loss_type, whole_groups=True)
    assert len(micro_batches) == 4 and not any(key.startswith("real_") for key in micro_batches[0])
    everything = []
    for micro in micro_batches:  # every micro-step, and so every optimizer step, holds whole groups of 4
        prompts = [prompt for prompt, _ in _rows(micro)]
        assert all(prompts.count(prompt) == 4 for prompt in prompts) and len(set(prompts)) == 2
        everything += _rows(micro)
    assert sorted(everything) == sorted(_rows(batch))  # the whole generation batch, each row once


@pytest.mark.parametrize("loss_type", ["grpo", "dapo"])
def test_whole_groups_per_step_leaves_trls_loss_unchanged(tmp_path, loss_type):
    """Same micro-batch, same loss as GRPOTrainer's; and over the generation batch the same total loss as TRL's
    own per-row split, since both normalise over equal micro-batches (grpo) or the whole batch (dapo)."""
    trainer, batch, micro_batches = _generation_batch_and_micro_batches(tmp_path, loss_type, whole_groups=True)
    with torch.no_grad():  # move the policy away from pi_old, so that the ratios and each row's loss differ
        for parameter in trainer.model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(1)))
    trainer.current_gradient_accumulation_steps = 2
    whole = [trainer._compute_loss(trainer.model, micro) for micro in micro_batches]
    for micro, loss in zip(micro_batches, whole, strict=True):
        torch.testing.assert_close(GRPOTrainer._compute_loss(trainer, trainer.model, micro), loss)
    trl_split = split_tensor_dict(shuffle_sequence_dict(batch), 4)  # what GRPOTrainer._prepare_inputs does
    per_row = [trainer._compute_loss(trainer.model, micro) for micro in trl_split]
    assert torch.stack(whole).abs().max() > 1e-3  # the comparison is not between zeros
    torch.testing.assert_close(sum(whole), sum(per_row), rtol=1e-5, atol=1e-7)


def tiny_moe_model(tokenizer):
    config = Qwen3MoeConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        moe_intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        num_experts=4,
        num_experts_per_tok=2,
        output_router_logits=True,
        router_aux_loss_coef=0.01,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    return Qwen3MoeForCausalLM(config)


def test_router_loss_of_moe_models_reaches_the_gradient_and_is_reported(tmp_path):
    tokenizer = build_tiny_tokenizer()
    runs = {}
    for coef in (0.0, 10.0):
        trainer = make_trainer(
            tmp_path / str(coef), model=tiny_moe_model(tokenizer), max_steps=1, router_aux_loss_coef=coef
        )
        runs[coef] = (_trained_parameters(trainer), trainer.state.log_history[0])
    (without, _), (with_router_loss, logs) = runs[0.0], runs[10.0]
    assert logs["aux_loss"] > 0
    assert any(not torch.allclose(a, b) for a, b in zip(without, with_router_loss, strict=True))


def test_image_inputs_are_refused_at_construction(tmp_path):
    rows = {"prompt": [[{"role": "user", "content": "What is 1 + 1?"}]] * 4}
    with pytest.raises(ValueError, match=r"^whole_groups_per_step=True does not take image inputs .* set whole"):
        REALTrainer(
            model=build_tiny_model(seed=0),
            reward_funcs=[parity_reward],
            args=REALConfig(
                output_dir=str(tmp_path), loss_type="grpo", whole_groups_per_step=True, per_device_train_batch_size=4,
                num_generations=4, report_to=[],
            ),
            train_dataset=Dataset.from_dict({**rows, "image": [None] * 4}),
            processing_class=build_tiny_tokenizer(),
        )  # fmt: skip
    with_images = Dataset.from_dict({**rows, "image": [None] * 4})
    image_part = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many dots?"}]}]
    for where, train, evaluation in (
        ("train_dataset", with_images, None),
        ("eval_dataset", prompts(), Dataset.from_dict({"prompt": [image_part] * 4})),
    ):
        with pytest.raises(ValueError, match=rf"^loss_type='real' does not take image inputs \({where} has them\)"):
            REALTrainer(
                model=build_tiny_model(seed=0),
                reward_funcs=[parity_reward],
                args=REALConfig(
                    output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=4, report_to=[]
                ),
                train_dataset=train,
                eval_dataset=evaluation,
                processing_class=build_tiny_tokenizer(),
            )


@pytest.mark.parametrize("loss_type", ["real", "grpo"])
def test_vllms_importance_sampling_ratio_does_not_reach_the_real_loss(tmp_path, loss_type):
    """With vllm_importance_sampling_correction, TRL puts each token's vLLM-to-trainer ratio in the batch and GRPO's
    loss multiplies by it. REAL's score is measured against pi_old, which the trainer recomputes: its loss is the
    same to the bit with the ratio and without (docs/method.md). GRPO's changes, so the check could fail."""
    trainer, _, micro_batches = _generation_batch_and_micro_batches(tmp_path, loss_type, whole_groups=True)
    with torch.no_grad():  # away from pi_old, so that the ratios pi_theta / pi_old are not all 1
        for parameter in trainer.model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(1)))
    trainer.current_gradient_accumulation_steps = 2
    micro = micro_batches[0]
    generator = torch.Generator().manual_seed(2)
    ratio = 0.5 + 1.5 * torch.rand(micro["completion_mask"].shape, generator=generator)
    without = trainer._compute_loss(trainer.model, micro)
    trainer.use_vllm, trainer.vllm_importance_sampling_correction = True, True  # as TRL sets them for vLLM
    with_ratio = trainer._compute_loss(trainer.model, {**micro, "importance_sampling_ratio": ratio})
    if loss_type == "real":
        assert torch.equal(with_ratio, without)
    else:
        assert not torch.allclose(with_ratio, without)
