"""The REAL loss types' log-prob path: the token tile of TRL's fused LM head (`logprob_chunk_size`) and the pi_old
forward over the trained rows only. Both must change the cost, never the log-probs or the updates.

Every run here generates inside an optimizer step (gradient_accumulation_steps 2, steps_per_generation 4), so
TRL's condition for a pi_old forward holds. Multi-process layouts and engines: tests/test_distributed.py.
"""

import pytest
import torch
from trl.kernels import chunked_logprob

from real_trl import REALConfig, REALTrainer
from real_trl.tiny import build_tiny_model, build_tiny_tokenizer

from helpers import parity_reward, prompts, rollout, tiny_run_settings

TRL_TILE = 4096


def make_trainer(tmp_path, **overrides):
    tokenizer = build_tiny_tokenizer()
    settings = {
        "optim": "sgd",  # the parameter change is the gradient itself: nothing hides a difference
        "learning_rate": 0.5,
        "lr_scheduler_type": "constant",
        "max_grad_norm": 0.0,
        "seed": 3,
        **overrides,
    }
    settings = tiny_run_settings(tmp_path, **settings)
    eval_dataset = prompts(4) if settings.get("eval_strategy", "no") != "no" else None
    return REALTrainer(
        model=build_tiny_model(tokenizer, seed=0),
        reward_funcs=[parity_reward],
        args=REALConfig(**settings),
        train_dataset=prompts(),
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        rollout_func=rollout,
    )


class Forwards:
    """Records every log-prob forward of a trainer: grad or no-grad, rows, the fused head's tile, the outputs."""

    def __init__(self, trainer):
        self.calls = []
        self.trainer = trainer
        compute = trainer._get_per_token_logps_and_entropies

        def recorded(model, input_ids, *args, **kwargs):
            logps, entropies, aux = compute(model, input_ids, *args, **kwargs)
            call = {
                "grad": torch.is_grad_enabled(),
                "rows": input_ids.size(0),
                "tile": chunked_logprob.TOKEN_CHUNK_SIZE,
                "training": trainer.model.training,
                "skipped": logps is None,
                "logps": None if logps is None else logps.detach().clone(),
                "entropies": None if entropies is None else entropies.detach().clone(),
                "positions": input_ids.numel(),
            }
            self.calls.append(call)
            return logps, entropies, aux

        trainer._get_per_token_logps_and_entropies = recorded

    def of(self, grad: bool, training: bool = True) -> list[dict]:
        return [c for c in self.calls if c["grad"] == grad and c["training"] == training and not c["skipped"]]


def train(trainer) -> tuple[dict, Forwards]:
    forwards = Forwards(trainer)
    trainer.train()
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}, forwards


def assert_same_update(got: dict, ref: dict, initial: dict, rtol: float):
    largest = max((ref[k] - initial[k]).abs().max().item() for k in ref)
    assert largest > 1e-2, "the run did not train: the comparison would be vacuous"
    for key in ref:
        torch.testing.assert_close(got[key], ref[key], rtol=rtol, atol=rtol * largest, msg=key)


@pytest.fixture(scope="module")
def initial():
    return build_tiny_model(build_tiny_tokenizer(), seed=0).state_dict()


def trained_rows(trainer) -> int:
    return sum(m["completion_ids"].size(0) for m in trainer._buffered_inputs if "real_placeholder" not in m)


# -- the tile --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("skip_no_signal", [True, False])
def test_small_tiles_give_the_same_logprobs_and_updates(tmp_path, initial, skip_no_signal):
    small, forwards = train(make_trainer(tmp_path / "small", logprob_chunk_size=8, skip_no_signal=skip_no_signal))
    trls, trl_forwards = train(make_trainer(tmp_path / "trl", logprob_chunk_size=0, skip_no_signal=skip_no_signal))
    # every forward (pi_old and training) and its backward ran with the tile asked for, over several tiles
    assert {c["tile"] for c in forwards.calls} == {8} and {c["tile"] for c in trl_forwards.calls} == {TRL_TILE}
    assert max(c["positions"] for c in forwards.of(grad=True)) > 4 * 8
    assert forwards.of(grad=False), "pi_old must be in play"
    # before the first update both runs hold the same parameters: the same log-probs, bit for bit
    first, trl_first = forwards.of(grad=True)[0], trl_forwards.of(grad=True)[0]
    assert torch.equal(first["logps"], trl_first["logps"]) and torch.equal(first["entropies"], trl_first["entropies"])
    for pi_old, trl_pi_old in zip(forwards.of(grad=False), trl_forwards.of(grad=False), strict=True):
        assert torch.equal(pi_old["logps"], trl_pi_old["logps"])
    # the weight gradient sums its tiles in another order: float32 rounding
    assert_same_update(small, trls, initial, rtol=1e-5)
    assert chunked_logprob.TOKEN_CHUNK_SIZE == TRL_TILE  # TRL's tile is back


def test_the_automatic_tile_on_cpu_is_small_and_trl_losses_keep_trls(tmp_path):
    assert make_trainer(tmp_path / "real")._logprob_tile == 256
    grpo = make_trainer(tmp_path / "grpo", loss_type="grpo")
    _, forwards = train(grpo)
    assert {c["tile"] for c in forwards.calls} == {TRL_TILE}


def test_trls_tile_is_restored_when_a_step_fails(tmp_path):
    trainer = make_trainer(tmp_path, logprob_chunk_size=8)
    seen = []

    def failing_loss(model, inputs):
        seen.append(chunked_logprob.TOKEN_CHUNK_SIZE)
        raise RuntimeError("boom")

    trainer._compute_loss = failing_loss
    with pytest.raises(RuntimeError, match="boom"):
        trainer.train()
    assert seen == [8] and chunked_logprob.TOKEN_CHUNK_SIZE == TRL_TILE


# -- pi_old only for the rows that train -----------------------------------------------------------------------


def test_pi_old_of_the_trained_rows_only_gives_the_same_updates(tmp_path, initial, monkeypatch):
    deferred = make_trainer(tmp_path / "deferred")
    params, forwards = train(deferred)
    # one pi_old forward per micro-step with rows, of exactly the rows that train, after TRL's call was skipped
    assert deferred.state.log_history[0]["real/rows_skipped"] > 0
    skipped_calls = [c for c in forwards.calls if c["skipped"]]
    assert len(skipped_calls) == 1 and skipped_calls[0]["rows"] == 16
    assert sum(c["rows"] for c in forwards.of(grad=False)) == trained_rows(deferred) < 16
    assert len(forwards.of(grad=False)) == sum("real_placeholder" not in m for m in deferred._buffered_inputs)
    # pi_old with the training forward's padding: the first micro-step's ratio is exactly 1
    assert deferred.state.log_history[0]["real/approx_kl"] == 0.0

    monkeypatch.setattr(REALTrainer, "_defers_pi_old", lambda self: False)  # TRL's pi_old over every row
    trls = make_trainer(tmp_path / "trl")
    trl_params, trl_forwards = train(trls)
    assert [c["rows"] for c in trl_forwards.of(grad=False)] == [16]
    assert_same_update(params, trl_params, initial, rtol=1e-6)


def test_without_skipping_pi_old_covers_every_row_in_the_training_padding(tmp_path):
    no_skip = make_trainer(tmp_path / "no_skip", skip_no_signal=False)
    _, forwards = train(no_skip)
    assert [c["rows"] for c in forwards.calls if c["skipped"]] == [16]
    assert [c["rows"] for c in forwards.of(grad=False)] == [4, 4, 4, 4]  # TRL's: 16 rows in chunks of 4
    assert no_skip.state.log_history[0]["real/approx_kl"] == 0.0


def test_trls_pi_old_stays_where_vllm_needs_every_row(tmp_path):
    # vLLM's importance-sampling correction reads pi_old for every row (its ratio and metrics)
    vllm = make_trainer(tmp_path / "vllm")
    assert vllm._defers_pi_old()
    vllm.use_vllm = vllm.vllm_importance_sampling_correction = True
    assert not vllm._defers_pi_old()
    vllm.vllm_importance_sampling_correction = False
    assert vllm._defers_pi_old()
    # generation on optimizer-step boundaries: TRL computes no pi_old, nor does REAL
    assert not make_trainer(tmp_path / "aligned", gradient_accumulation_steps=4)._defers_pi_old()
    # TRL's loss types: GRPOTrainer's own path
    assert not make_trainer(tmp_path / "grpo", loss_type="grpo")._defers_pi_old()


def test_evaluation_runs_no_pi_old_forward(tmp_path, monkeypatch):
    settings = {"eval_strategy": "steps", "eval_steps": 2, "per_device_eval_batch_size": 4, "max_steps": 2}
    trainer = make_trainer(tmp_path / "deferred", **settings)
    trainer.train()
    forwards = Forwards(trainer)
    metrics = trainer.evaluate()
    # one forward per evaluation batch, the loss's own (pi_old is the current policy); TRL's pi_old call skipped
    batches = len(trainer.get_eval_dataloader())
    assert batches > 1 and [c["skipped"] for c in forwards.calls] == [True, False] * batches

    monkeypatch.setattr(REALTrainer, "_defers_pi_old", lambda self: False)
    trls = make_trainer(tmp_path / "trl", **settings)
    trls.train()
    trl_forwards = Forwards(trls)
    trl_metrics = trls.evaluate()
    assert [c["skipped"] for c in trl_forwards.calls] == [False, False] * batches
    for key in ("eval_loss", "eval_real/score_pos", "eval_entropy"):
        assert metrics[key] == pytest.approx(trl_metrics[key], rel=1e-5, abs=1e-6), key


def test_vllms_distance_to_the_trainer_is_logged_over_the_trained_rows_without_another_forward(tmp_path):
    """With vLLM and its sampling correction off, REALTrainer logs |log pi_old - log pi_vLLM| itself; where pi_old is
    deferred, over the trained rows, from the pi_old forward they get anyway."""

    def vllm_rollout(prompts, trainer):  # vLLM's log-probs of the sampled tokens: -3 each
        output = rollout(prompts, trainer)
        return {**output, "logprobs": [[-3.0] * len(ids) for ids in output["completion_ids"]]}

    trainer = make_trainer(tmp_path, max_steps=2)  # one generation batch: 4 micro-steps, 2 optimizer steps
    trainer.rollout_func = vllm_rollout
    trainer.use_vllm, trainer.vllm_importance_sampling_correction = True, False
    trainer.vllm_generation = type("NoEngine", (), {"sync_weights": lambda self: None})()
    trainer._last_loaded_step = 0
    assert trainer._defers_pi_old()
    _, forwards = train(trainer)
    assert len(forwards.of(grad=False)) == sum("real_placeholder" not in m for m in trainer._buffered_inputs)
    trained = [m for m in trainer._buffered_inputs if "real_placeholder" not in m]
    delta = torch.cat([(m["old_per_token_logps"] + 3.0).abs()[m["completion_mask"].bool()] for m in trained])
    logged = [e for e in trainer.state.log_history if "sampling/sampling_logp_difference/mean" in e]
    assert len(logged) == 1 and delta.numel() < 16 * 12  # once per generation batch, skipped rows left out
    assert logged[0]["sampling/sampling_logp_difference/mean"] == pytest.approx(delta.mean().item(), rel=1e-6)
    assert logged[0]["sampling/sampling_logp_difference/max"] == pytest.approx(delta.max().item(), rel=1e-6)
