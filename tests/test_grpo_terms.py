"""REAL's KL penalty and entropy bonus are GRPO's: REALTrainer and trl.GRPOTrainer take the same updates.

GRPOTrainer computes both terms inline in `_compute_loss`, so REALTrainer states them again; these tests
hold the two equal. Both trainers see the same deterministic rollouts and a constant reward: GRPO's
advantages are then 0 and no REAL group has signal, so neither policy loss moves the model and the
update is the KL term or the entropy bonus alone. Each optimizer step is one micro-step holding the whole
generation batch, so both trainers see the same rows in every step and log the same metrics.
"""

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM
from trl import GRPOConfig, GRPOTrainer

from real_trl import REALConfig, REALTrainer
from real_trl.tiny import build_tiny_model, build_tiny_tokenizer

from helpers import rollout


def constant_reward(completions, **kwargs):
    return [1.0] * len(completions)


def _train(trainer_class, config_class, tmp_path, model, **settings) -> GRPOTrainer:
    args = config_class(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=12,
        optim="sgd",
        learning_rate=0.5,
        lr_scheduler_type="constant",
        max_grad_norm=0.0,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        use_cpu=True,
        bf16=False,
        disable_tqdm=True,
        seed=0,
        **settings,
    )
    prompts = [[{"role": "user", "content": f"What is {i} + {i}?"}] for i in range(8)]
    trainer = trainer_class(
        model=model,
        reward_funcs=[constant_reward],
        args=args,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=build_tiny_tokenizer(),
        rollout_func=rollout,
    )
    trainer.train()
    return trainer


def _assert_same_training(grpo: GRPOTrainer, real: REALTrainer, initial: dict, metric: str) -> None:
    moved = max((p.detach() - initial[n]).abs().max().item() for n, p in grpo.model.named_parameters())
    assert moved > 1e-4, "GRPO's run did not move the model: the comparison would be vacuous"
    for (name, expected), actual in zip(grpo.model.named_parameters(), real.model.parameters(), strict=True):
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * moved, msg=name)
    grpo_log = [entry[metric] for entry in grpo.state.log_history if metric in entry]
    real_log = [entry[metric] for entry in real.state.log_history if metric in entry]
    assert len(grpo_log) == len(real_log) > 0
    torch.testing.assert_close(torch.tensor(real_log), torch.tensor(grpo_log), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    ("bias_correction", "ratio_level"), [(True, "token"), (True, "sequence"), (False, "token")], ids=str
)
def test_kl_term_is_grpos(tmp_path, tiny_model_dir, bias_correction, ratio_level):
    # The policy starts away from the reference (loaded from disk by path, as TRL does), so the KL has a gradient
    # from the first step; num_iterations 2 makes the second pass's importance ratio differ from 1.
    def perturbed_policy():
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
        return model

    initial = {n: p.detach().clone() for n, p in perturbed_policy().named_parameters()}
    settings = {
        "beta": 0.5,
        "use_bias_correction_kl": bias_correction,
        "importance_sampling_level": ratio_level,
        "gradient_accumulation_steps": 1,
        "steps_per_generation": 1,
        "num_iterations": 2,
        "max_steps": 4,
    }
    grpo = _train(GRPOTrainer, GRPOConfig, tmp_path / "grpo", perturbed_policy(), loss_type="grpo", **settings)
    real = _train(REALTrainer, REALConfig, tmp_path / "real", perturbed_policy(), loss_type="real", **settings)
    _assert_same_training(grpo, real, initial, "kl")


@pytest.mark.parametrize("entropy_target", [10.0, 1.0], ids=["bonus_on", "bonus_gated_off"])
def test_entropy_bonus_and_its_controller_are_grpos(tmp_path, entropy_target):
    # A random model's token entropy is about 5.5 nats: below a target of 10 the controller raises the
    # coefficient and the bonus applies; above a target of 1 it lowers it and gates the bonus off.
    settings = {
        "use_adaptive_entropy": True,
        "entropy_coef": 0.3,
        "entropy_coef_delta": 0.1,
        "entropy_target": entropy_target,
        "gradient_accumulation_steps": 1,
        "steps_per_generation": 1,
        "max_steps": 4,
    }
    initial = {n: p.detach().clone() for n, p in build_tiny_model(seed=0).named_parameters()}
    grpo = _train(GRPOTrainer, GRPOConfig, tmp_path / "grpo", build_tiny_model(seed=0), loss_type="grpo", **settings)
    real = _train(REALTrainer, REALConfig, tmp_path / "real", build_tiny_model(seed=0), loss_type="real", **settings)
    coefs = [entry["entropy_coef"] for entry in real.state.log_history if "entropy_coef" in entry]
    assert coefs == [entry["entropy_coef"] for entry in grpo.state.log_history if "entropy_coef" in entry]
    if entropy_target > 5.5:
        assert coefs == pytest.approx([0.4, 0.5, 0.6, 0.7])
        _assert_same_training(grpo, real, initial, "entropy")
    else:
        assert coefs == pytest.approx([0.2, 0.1, 0.0, 0.0])
        for name, parameter in real.model.named_parameters():  # gated off: no gradient from the bonus
            assert torch.equal(parameter.detach(), initial[name]), name
