import warnings
from dataclasses import fields

import pytest

from real_trl import REALConfig
from real_trl.config import GRPO_ONLY_SETTINGS, TRL_LOSS_TYPES, logprob_tile


def make(**kwargs):
    defaults = {
        "output_dir": "out",
        "per_device_train_batch_size": 4,
        "num_generations": 4,
        "report_to": [],
        "use_cpu": True,
    }
    return REALConfig(**{**defaults, **kwargs})


def test_defaults_follow_the_paper():
    config = make()
    assert config.loss_type == "real" and config.tau == 0.5 and config.label_threshold == 0.5
    assert config.uses_real_loss


@pytest.mark.parametrize("loss_type", ["real", "real_product", "bce", *TRL_LOSS_TYPES])
def test_every_loss_type_is_accepted(loss_type):
    extra = {"importance_sampling_level": "sequence"} if loss_type == "luspo" else {}
    assert make(loss_type=loss_type, **extra).loss_type == loss_type


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tau": 0.0}, "tau must be > 0"),
        ({"tau": -1.0}, "tau must be > 0"),
        ({"loss_type": "ppo"}, "Unknown loss_type 'ppo'"),
        ({"label_rule": "median"}, "Unknown label_rule 'median'"),
        (
            {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 2},
            r"per_device_train_batch_size \(2\).* must be a multiple of num_generations \(4\)",
        ),
        (  # GRPOConfig would name generation_batch_size, which the user never set
            {"per_device_train_batch_size": 4, "num_generations": 8},
            r"per_device_train_batch_size \(4\) x processes \(1\) x gradient_accumulation_steps \(1\) = 4",
        ),
        ({"logprob_chunk_size": -1}, r"logprob_chunk_size must be >= 0 \(got -1\)"),
        (
            {"steps_per_generation": 8, "gradient_accumulation_steps": 2, "save_steps": 6},
            r"save_steps \(6\) must be a multiple of the 4 optimizer steps per generation batch",
        ),
    ],
)
def test_bad_settings_fail_with_the_fix_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


def test_trl_loss_types_keep_grpo_layout_rules():
    # GRPO's per-sample shuffle has no whole-group requirement: the REAL layout check must not apply.
    assert (
        make(
            loss_type="dapo", per_device_train_batch_size=3, num_generations=3, gradient_accumulation_steps=2
        ).loss_type
        == "dapo"
    )


def test_grpo_only_settings_are_ignored_with_one_warning():
    with pytest.warns(UserWarning, match=r"ignores these GRPO-only settings: epsilon=0.3, scale_rewards='none'"):
        make(epsilon=0.3, scale_rewards="none")
    assert {"epsilon", "delta", "importance_sampling_level", "vllm_importance_sampling_correction"} <= set(
        GRPO_ONLY_SETTINGS
    )
    assert set(GRPO_ONLY_SETTINGS) <= {f.name for f in fields(REALConfig)}


def test_vllm_sampling_correction_is_reported_as_leaving_the_real_loss_unchanged():
    with pytest.warns(UserWarning) as caught:
        make(vllm_importance_sampling_correction=False, epsilon=0.3)
    messages = [str(warning.message) for warning in caught]
    assert "loss_type='real' ignores these GRPO-only settings: epsilon=0.3" in messages
    assert any(
        message.startswith("loss_type='real' does not apply TRL's vLLM importance-sampling ratio")
        and "its loss is the same with vllm_importance_sampling_correction=False" in message
        for message in messages
    ), messages


def test_default_checkpoints_fall_between_generation_batches():
    assert make(steps_per_generation=3, gradient_accumulation_steps=1).save_steps == 498


def test_cpu_machines_default_to_float32(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert REALConfig(output_dir="out", per_device_train_batch_size=4, num_generations=4, report_to=[]).bf16 is False


def test_settings_the_real_losses_apply_are_not_reported_as_ignored():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the "ignores these GRPO-only settings" warning would fail here
        make(use_adaptive_entropy=True, top_entropy_quantile=0.2, entropy_coef=0.01, beta=0.01)
        # the bias-corrected KL uses GRPO's importance ratio, at the importance_sampling_level asked for
        make(beta=0.01, use_bias_correction_kl=True, importance_sampling_level="sequence")
    with pytest.warns(UserWarning, match=r"ignores these GRPO-only settings: importance_sampling_level='sequence'"):
        make(beta=0.01, use_bias_correction_kl=False, importance_sampling_level="sequence")


def test_fields_carry_help_text():
    helps = {f.name: f.metadata.get("help", "") for f in fields(REALConfig)}
    assert "0.5" in helps["tau"] and "threshold" in helps["label_threshold"] and "real_product" in helps["loss_type"]
    assert "group_mean" in helps["label_rule"] and "exactly zero" in helps["skip_no_signal"]


def test_logprob_tile_follows_the_setting_and_the_kernel():
    # None: TRL's tile where its Triton kernel runs, a small one where its torch fallback folds the tiles
    assert logprob_tile(None, triton_kernel=True) == 4096 and logprob_tile(None, triton_kernel=False) == 256
    assert logprob_tile(0, triton_kernel=False) == 4096 and logprob_tile(0, triton_kernel=True) == 4096
    assert logprob_tile(100, triton_kernel=True) == 100 and logprob_tile(100, triton_kernel=False) == 100
    assert make().logprob_chunk_size is None
    helps = {f.name: f.metadata.get("help", "") for f in fields(REALConfig)}
    assert "never builds the full logits" in helps["logprob_chunk_size"]


def test_logprob_chunk_size_with_a_trl_loss_type_warns_that_it_does_not_apply():
    with pytest.warns(UserWarning, match=r"logprob_chunk_size applies to the REAL loss types; loss_type='grpo'"):
        make(loss_type="grpo", logprob_chunk_size=64)
