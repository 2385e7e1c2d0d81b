"""Fails loudly when the GRPOTrainer internals REALTrainer builds on move (trl is pinned to 1.16.x)."""

import inspect
import io
import tokenize

import torch
import trl
from trl import GRPOTrainer
from trl.kernels import chunked_logprob
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.utils import RepeatSampler, get_config_model_id

from real_trl.config import TRL_LOGPROB_TILE, TRL_LOSS_TYPES

OVERRIDDEN_HOOKS = {
    "_get_train_sampler": ["self", "dataset"],
    "_calculate_rewards": ["self", "inputs", "prompts", "completions", "completion_ids_list"],
    "_generate_and_score_completions": ["self", "inputs"],
    "_prepare_inputs": ["self", "generation_batch"],
    "_compute_loss": ["self", "model", "inputs"],
    "training_step": ["self", "model", "inputs", "num_items_in_batch"],
    "prediction_step": ["self", "model", "inputs", "prediction_loss_only", "ignore_keys"],
}


def test_trl_minor_is_the_one_we_test():
    assert trl.__version__.startswith("1.16."), f"REALTrainer is tested against trl 1.16, found {trl.__version__}"


def test_overridden_hooks_keep_their_signatures():
    for name, params in OVERRIDDEN_HOOKS.items():
        assert list(inspect.signature(getattr(GRPOTrainer, name)).parameters) == params, name


def test_helpers_we_call_keep_their_signatures():
    params = inspect.signature(GRPOTrainer._get_per_token_logps_and_entropies).parameters
    assert list(params)[:8] == [
        "self",
        "model",
        "input_ids",
        "attention_mask",
        "logits_to_keep",
        "batch_size",
        "compute_entropy",
        "compute_aux_loss",
    ]


def test_state_we_rely_on_is_still_there():
    init = inspect.getsource(GRPOTrainer.__init__)
    for attribute in (
        "_buffered_inputs",
        "_step",
        "num_iterations",
        "reward_weights",
        "_metrics",
        "entropy_coef",
        "aux_loss_enabled",
        "_tokenizer",
        "num_generations_eval",
        "beta",
        "router_aux_loss_coef",
        "top_entropy_quantile",
        "use_adaptive_entropy",
        "_entropy_bonus_enabled",
        "_last_world_entropy",
        "_entropy_window_stats",
        "importance_sampling_level",
        "use_vllm",
        "vllm_importance_sampling_correction",
    ):
        assert f"self.{attribute} =" in init, attribute
    # REAL's KL term is GRPO's (tests/test_trainer.py compares them); these are the settings it reads
    assert "self.args.use_bias_correction_kl" in inspect.getsource(GRPOTrainer._compute_loss)
    # micro-steps are served from a buffer refilled every steps_per_generation * num_iterations steps
    assert "self._step % generate_every == 0" in inspect.getsource(GRPOTrainer._prepare_inputs)
    generate = inspect.getsource(GRPOTrainer._generate_and_score_completions)
    assert "self._calculate_rewards(" in generate and '"completion_ids": completion_ids' in generate
    assert 'output["old_per_token_logps"]' in generate and 'output["ref_per_token_logps"]' in generate
    # the sampling log-prob metric REALTrainer logs also with the correction off: TRL's keys and inputs
    assert 'output["sampling_per_token_logps"]' in generate
    assert '"sampling/sampling_logp_difference/max"' in generate
    assert "if self.use_vllm and self.vllm_importance_sampling_correction:" in generate
    # GRPOTrainer's losses scale themselves for gradient accumulation, and so does ours
    assert GRPOTrainer.loss_is_scaled_for_ga is True


def test_sampler_and_utilities_we_build_on():
    # ResumableRepeatSampler re-creates TRL's sampler from these attributes
    sampler_init = inspect.signature(RepeatSampler.__init__).parameters
    assert [name for name in sampler_init if name != "self"] == [
        "data_source",
        "mini_repeat_count",
        "batch_size",
        "repeat_count",
        "shuffle",
        "seed",
    ]
    assert "self.generator" in inspect.getsource(RepeatSampler.__init__)
    assert list(inspect.signature(get_config_model_id).parameters) == ["config"]


def test_trl_loss_types_we_forward_exist():
    source = inspect.getsource(GRPOTrainer._compute_loss)
    for loss_type in TRL_LOSS_TYPES:
        assert f'"{loss_type}"' in source, loss_type


def test_model_card_and_entropy_mask_hooks_we_use():
    # the model card reads these class attributes; REALTrainer sets its own for the REAL losses
    assert {"_tag_names", "_name", "_paper"} <= vars(GRPOTrainer).keys()
    assert list(inspect.signature(GRPOTrainer.get_high_entropy_mask).parameters) == [
        "self",
        "entropies",
        "mask",
        "threshold",
    ]


def test_transformers_internals_the_recipes_and_launcher_rely_on(tmp_path):
    from transformers import Trainer
    from transformers.trainer_utils import rotate_checkpoints

    # metric_for_best_model "reward": GRPOTrainer.log adds its eval metrics (eval_reward, ...) to the dict that
    # Trainer.evaluate returns and _determine_best_metric reads, in place
    assert "logs.update(metrics)" in inspect.getsource(GRPOTrainer.log)
    # ... and save_total_limit never deletes the best checkpoint
    for step in range(80, 560, 80):
        (tmp_path / f"checkpoint-{step}").mkdir()
    rotate_checkpoints(str(tmp_path), save_total_limit=2, best_model_checkpoint=str(tmp_path / "checkpoint-160"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-160", "checkpoint-480"]
    # reduce_fsdp2_gradients_in_float32 turns on sync_each_batch, which the Trainer reads before every micro-step
    assert 'plugin_kwargs.get("sync_each_batch"' in inspect.getsource(Trainer._run_epoch)


def test_the_fused_lm_head_we_set_the_tile_of():
    # GRPOTrainer computes every log-prob through TRL's fused LM head (no [rows x tokens x vocab] logits) ...
    assert "add_fused_lm_head(" in inspect.getsource(GRPOTrainer.__init__)
    assert "fused_lm_head=True" in inspect.getsource(GRPOTrainer._get_per_token_logps_and_entropies)
    # ... whose token tile is a module global, TRL's default, that REALTrainer sets around its steps
    assert chunked_logprob.TOKEN_CHUNK_SIZE == TRL_LOGPROB_TILE
    assert list(inspect.signature(chunked_logprob._use_triton).parameters) == ["device"]
    assert chunked_logprob._use_triton(torch.device("cpu")) is False


def test_the_fused_head_reads_its_tile_at_call_time_in_forward_and_backward(monkeypatch):
    counts = {"forward": 0, "backward": 0}
    for name, key in (("_forward_tile", "forward"), ("_backward_tile", "backward")):
        fold = getattr(chunked_logprob, name)

        def counted(*args, _fold=fold, _key=key, **kwargs):
            counts[_key] += 1
            return _fold(*args, **kwargs)

        monkeypatch.setattr(chunked_logprob, name, counted)
    hidden = torch.randn(10, 6, requires_grad=True)
    weight = torch.randn(50, 6, requires_grad=True)
    targets = torch.randint(0, 50, (10,))
    monkeypatch.setattr(chunked_logprob, "TOKEN_CHUNK_SIZE", 4)
    logps, *_ = chunked_logprob.ChunkedLogProbFunction.apply(hidden, weight, None, targets, 1.0, 50)
    monkeypatch.setattr(chunked_logprob, "TOKEN_CHUNK_SIZE", 5)  # read again by the backward
    logps.sum().backward()
    assert counts == {"forward": 3, "backward": 2}  # 10 tokens in tiles of 4, then of 5 (one vocabulary chunk)


def test_the_pi_old_call_we_skip_and_replace():
    generate = _code_without_comments(GRPOTrainer._generate_and_score_completions)
    # TRL's condition for a pi_old forward over the whole batch (REALTrainer._defers_pi_old restates it) ...
    assert (
        "generate_every = self.args.steps_per_generation * self.num_iterations if "
        "self.args.gradient_accumulation_steps % generate_every != 0 or ( self.use_vllm and "
        "self.vllm_importance_sampling_correction ): old_per_token_logps, _, _ = "
        "self._get_per_token_logps_and_entropies( self.model," in generate
    )
    # ... is its first log-prob call, no-grad, before the reference model's; without it nothing else needs pi_old
    first_call = generate.index("self._get_per_token_logps_and_entropies(")
    assert generate.rindex("old_per_token_logps, _, _ =", 0, first_call) > generate.index("with torch.no_grad()")
    assert first_call < generate.index("ref_per_token_logps, _, _ = self._get_per_token_logps_and_entropies(")
    assert 'if old_per_token_logps is not None: output["old_per_token_logps"]' in generate
    assert list(inspect.signature(disable_gradient_checkpointing).parameters) == [
        "model",
        "gradient_checkpointing_kwargs",
    ]
    init = inspect.getsource(GRPOTrainer.__init__)
    for attribute in ("use_vllm", "vllm_importance_sampling_correction"):
        assert f"self.{attribute} =" in init, attribute


def _code_without_comments(function) -> str:
    """A function's source without comments, its whitespace runs collapsed to one space."""
    source = inspect.getsource(function)
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    comments = [token for token in tokens if token.type == tokenize.COMMENT]
    lines = source.splitlines()
    for comment in reversed(comments):
        (row, start), (_, end) = comment.start, comment.end
        lines[row - 1] = lines[row - 1][:start] + lines[row - 1][end:]
    return " ".join("\n".join(lines).split())
