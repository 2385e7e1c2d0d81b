import pytest

from real_trl import REALConfig
from real_trl.config import TRL_LOSS_TYPES


def make(**kwargs):
    defaults = dict(output_dir="out", per_device_train_batch_size=4, num_generations=4, report_to=[], use_cpu=True)
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
        (
            {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 2},
            r"per_device_train_batch_size \(2\) x num_processes \(1\) = 2 must be a multiple of num_generations \(4\)",
        ),
        ({"use_adaptive_entropy": True}, "does not support use_adaptive_entropy"),
        ({"top_entropy_quantile": 0.2}, "does not support top_entropy_quantile"),
    ],
)
def test_bad_settings_fail_with_the_fix_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


def test_trl_loss_types_keep_grpo_layout_rules():
    # GRPO's per-sample shuffle has no whole-group requirement: the REAL layout check must not apply.
    assert make(loss_type="dapo", per_device_train_batch_size=3, num_generations=3, gradient_accumulation_steps=2).loss_type == "dapo"


def test_fields_carry_help_text():
    from dataclasses import fields

    helps = {f.name: f.metadata.get("help", "") for f in fields(REALConfig)}
    assert "0.5" in helps["tau"] and "threshold" in helps["label_threshold"] and "real_product" in helps["loss_type"]
