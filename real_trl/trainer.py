"""REALTrainer: GRPOTrainer with REAL's objective.

Eight GRPOTrainer hooks are overridden. Two serve every loss type: `_get_train_sampler` makes the
sampler resume exactly (`sampler.py`), and `_calculate_rewards` keeps the gathered rewards, from which
`_generate_and_score_completions` logs each generation batch's group outcomes. For TRL's own loss types
nothing else changes, unless `whole_groups_per_step` asks `_prepare_inputs` for the group-level plan below
(without skipping rows; the loss stays GRPOTrainer's). For the REAL loss types:

* `_generate_and_score_completions` turns the gathered rewards into class labels and global group ids;
* `_prepare_inputs` plans the generation batch at group level (`layout.plan_generation_batch`) so every
  micro-step, over all processes together, holds whole groups, drops the rows that cannot carry a
  gradient (`skip_no_signal`), and moves rows to the process the plan gives them (once per generation
  batch);
* `_compute_loss` all-gathers only per-sequence numbers (`SequenceStats`), evaluates the loss of the
  whole global micro-batch on every process, and backpropagates its exact weights dL/ds through the
  local scores. The KL penalty, the entropy bonus and its controller are GRPO's terms, re-stated here
  because GRPOTrainer computes them inline; tests check them equal to GRPOTrainer's.

The backward pass goes through local tensors only (no autograd through collectives), so DDP, DeepSpeed
ZeRO and FSDP reduce the gradient as they would any data-parallel loss. docs/method.md explains why.

Three more serve the REAL loss types' cost: `training_step` and `prediction_step` set the token tile of
TRL's fused LM head (`REALConfig.logprob_chunk_size`), and `_get_per_token_logps_and_entropies` skips TRL's
pi_old forward over the whole generation batch (unless vLLM's importance-sampling correction needs it): the
rows the plan trains get theirs after the rewards, one forward per micro-step, and evaluation needs none.
"""

from __future__ import annotations

import contextlib
import textwrap
import warnings
from typing import ClassVar

import torch
from trl import GRPOTrainer
from trl.kernels import chunked_logprob
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.utils import get_config_model_id

from real_trl.config import REALConfig, logprob_tile
from real_trl.layout import (
    PROMPT_KEYS,
    GenerationBatchPlan,
    group_ids_for_rows,
    is_per_row,
    placeholder_row,
    plan_generation_batch,
    trim_padding,
)
from real_trl.losses import (
    LOSSES,
    REAL_LOSS_TYPES,
    SequenceStats,
    group_has_signal,
    loss_denominator,
    reference_kl,
    rewards_to_labels,
    sequence_scores,
)
from real_trl.sampler import ResumableRepeatSampler
from real_trl.vllm_cpu import cpu_engine

# Dataset columns that carry images into GRPOTrainer's multimodal path.
IMAGE_COLUMNS = ("image", "images")


class REALTrainer(GRPOTrainer):
    """Drop-in replacement for `trl.GRPOTrainer` that trains with REAL (see `REALConfig`)."""

    _tag_names: ClassVar[list[str]] = ["trl", "real"]
    _name = "REAL"
    _paper: ClassVar[dict] = {
        "title": "Rewards as Labels",
        "id": "2602.05630",
        "citation": textwrap.dedent("""\
            @article{real2026,
                title        = {{Rewards as Labels}},
                year         = 2026,
                eprint       = {arXiv:2602.05630},
            }"""),
    }

    def __init__(self, model, reward_funcs=None, args: REALConfig | None = None, *positional, **kwargs):
        if args is None:
            name = model if isinstance(model, str) else get_config_model_id(model.config)
            args = REALConfig(f"{str(name).rstrip('/').split('/')[-1]}-REAL")
        self._uses_real_loss = getattr(args, "loss_type", None) in REAL_LOSS_TYPES
        if not self._uses_real_loss:  # a TRL loss type: GRPOTrainer's own name, tags and paper on the card
            self._tag_names, self._name, self._paper = GRPOTrainer._tag_names, GRPOTrainer._name, GRPOTrainer._paper
        with cpu_engine(args, weights_dtype=lambda: _weights_dtype(self.model)):  # vLLM on CPU; nothing on GPU
            super().__init__(model, reward_funcs, args, *positional, **kwargs)
        self._plans_whole_groups = self._uses_real_loss or bool(getattr(args, "whole_groups_per_step", False))
        if self._plans_whole_groups:
            _refuse_images(self.train_dataset, self.eval_dataset, self._image_setting())
        self._watched_first_batch = False
        triton_kernel = chunked_logprob._use_triton(self.accelerator.device)
        self._logprob_tile = logprob_tile(getattr(args, "logprob_chunk_size", None), triton_kernel)
        self._skip_next_pi_old_call = self._pi_old_deferred = False

    def _image_setting(self) -> str:
        return f"loss_type={self.args.loss_type!r}" if self._uses_real_loss else "whole_groups_per_step=True"

    @property
    def skips_rows(self) -> bool:
        """Whether rows without gradient are dropped: only when nothing but the REAL loss gives them one."""
        args, other_gradient = self.args, self._entropy_bonus_enabled or self.aux_loss_enabled or self.beta != 0.0
        whole_steps = args.steps_per_generation % args.gradient_accumulation_steps == 0
        keep_all_tokens = self.top_entropy_quantile == 1.0  # the high-entropy mask is a quantile over all rows
        return self._uses_real_loss and args.skip_no_signal and not other_gradient and keep_all_tokens and whole_steps

    def _get_train_sampler(self, dataset=None):
        sampler = super()._get_train_sampler(dataset)
        return ResumableRepeatSampler(
            data_source=sampler.data_source,
            mini_repeat_count=sampler.mini_repeat_count,
            batch_size=sampler.batch_size,
            repeat_count=sampler.repeat_count,
            shuffle=sampler.shuffle,
            seed=sampler.seed,
            current_epoch=lambda: int(self.state.epoch or 0),
        )

    # -- generation: labels and group ids ------------------------------------------------------------

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        # Gathered over all processes (N_global, num_funcs); kept to derive labels from.
        self._rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        return self._rewards_per_func

    def _generate_and_score_completions(self, inputs):
        with self._pi_old_for_trained_rows_only():
            output = super()._generate_and_score_completions(inputs)
        if self._logs_sampling_difference(output) and not self._pi_old_deferred:  # else: over the trained rows
            self._log_sampling_logp_difference([self._sampling_logp_difference(output, self._pi_old_of(output))])
        mode = "train" if self.model.training else "eval"
        group_size = self.num_generations if mode == "train" else self.num_generations_eval
        rule, threshold = getattr(self.args, "label_rule", "threshold"), getattr(self.args, "label_threshold", 0.5)
        labels = rewards_to_labels(self._rewards_per_func, self.reward_weights, threshold, rule, group_size)
        group_ids = group_ids_for_rows(torch.arange(labels.numel(), device=labels.device), group_size)
        has_signal, _ = group_has_signal(labels, group_ids)
        self._log_group_outcomes(labels.view(-1, group_size), has_signal, mode)
        self._generation_labels = labels  # global, identical on every process: the plan reads it
        if not self._plans_whole_groups:
            return output
        if any(key in output for key in ("pixel_values", "image_grid_thw", "pixel_attention_mask")):
            raise ValueError(_image_refusal(self._image_setting(), "the generation batch"))
        if not self._uses_real_loss:
            return output
        if mode == "train":
            self._watch_for_no_signal(has_signal)
        local = output["completion_ids"].size(0)
        rows = torch.arange(local, device=labels.device) + self.accelerator.process_index * local
        output["real_labels"] = labels[rows]
        output["real_group_ids"] = group_ids[rows]
        # Evaluated as one batch (evaluation): the loss divides by the whole batch's count.
        denominator = loss_denominator(self.loss_type, labels, group_ids)
        output["real_denominators"] = torch.full((local,), denominator, dtype=torch.float64, device=labels.device)
        return output

    # -- vLLM: how far its sampling policy is from the trainer's ------------------------------------

    def _logs_sampling_difference(self, output: dict) -> bool:
        """Whether REALTrainer logs TRL's `sampling/sampling_logp_difference/{mean,max}`, |log pi_old - log pi_vLLM|
        over the sampled tokens: with vLLM, when TRL does not (it logs it only with
        `vllm_importance_sampling_correction` on). It shows at every generation batch that vLLM samples from the
        trainer's weights (in float32: about 1e-6)."""
        return self.use_vllm and not self.vllm_importance_sampling_correction and "sampling_per_token_logps" in output

    def _pi_old_of(self, output: dict) -> torch.Tensor:
        """TRL's pi_old of the generation batch; without one (one optimizer step per generation batch), a no-grad
        forward pass of the current policy, which is then pi_old."""
        old = output.get("old_per_token_logps")
        if old is None:
            with torch.no_grad():
                old, _, _ = self._get_per_token_logps_and_entropies(
                    self.model,
                    torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1),
                    torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1),
                    output["completion_ids"].size(1),
                )
        return old

    @staticmethod
    def _sampling_logp_difference(rows: dict, old_per_token_logps: torch.Tensor) -> torch.Tensor:
        """|log pi_old - log pi_vLLM| of the sampled tokens of `rows`, flat; tokens vLLM could not score (NaN, as in
        TRL) are left out."""
        mask = rows["completion_mask"] if "tool_mask" not in rows else rows["completion_mask"] * rows["tool_mask"]
        delta = (old_per_token_logps - rows["sampling_per_token_logps"]).abs()
        return delta[mask.bool() & ~torch.isnan(delta)]

    def _log_sampling_logp_difference(self, differences: list[torch.Tensor]) -> None:
        """The mean and the max over every process's tokens."""
        delta = torch.cat(differences) if differences else torch.zeros(0, device=self.accelerator.device)
        largest = delta.max() if delta.numel() else delta.new_zeros(())
        local = torch.stack([delta.sum(), delta.new_tensor(delta.numel()), largest]).float()
        total = self.accelerator.gather(local[None])
        metrics = self._metrics["train" if self.model.training else "eval"]
        metrics["sampling/sampling_logp_difference/mean"].append(
            (total[:, 0].sum() / total[:, 1].sum().clamp(min=1)).item()
        )
        metrics["sampling/sampling_logp_difference/max"].append(total[:, 2].max().item())

    def _log_group_outcomes(self, grouped_labels: torch.Tensor, has_signal: torch.Tensor, mode: str) -> None:
        positives = (grouped_labels == 1).sum(1)
        negatives = (grouped_labels == 0).sum(1)
        scored = positives + negatives
        metrics = self._metrics[mode]
        metrics["groups/solve_all"].append(((positives == scored) & (scored > 0)).float().mean().item())
        metrics["groups/solve_none"].append(((negatives == scored) & (scored > 0)).float().mean().item())
        metrics["groups/with_signal"].append(has_signal.float().mean().item())

    def _watch_for_no_signal(self, has_signal: torch.Tensor) -> None:
        """Warn once when the first generation batch has no group with a positive and a negative while the
        rewards are not 0/1: the REAL gradient is then exactly zero, and with such rewards it stays zero."""
        if self._watched_first_batch:
            return
        self._watched_first_batch = True
        totals = (self._rewards_per_func * self.reward_weights.to(self._rewards_per_func)).nansum(dim=1)
        if has_signal.any() or bool(((totals == 0) | (totals == 1)).all()):
            return
        args = self.args
        warnings.warn(
            f"\n{'=' * 100}\nREAL: no group of the first generation batch has both a positive and a negative, so the "
            "REAL gradient is exactly zero and the model does not change.\n"
            f"Rewards seen: {totals.min().item():g} to {totals.max().item():g}; label_rule={args.label_rule!r}, "
            f"label_threshold={args.label_threshold:g}. Two ways out:\n"
            "  - label_rule='group_mean': a completion is positive when its reward beats its group's mean (any "
            "reward scale);\n"
            "  - label_threshold inside the reward range, so that only good completions land above it.\n"
            f"{'=' * 100}",
            UserWarning,
            stacklevel=2,
        )

    # -- micro-step planning -------------------------------------------------------------------------

    def _prepare_inputs(self, generation_batch):
        if not (self._plans_whole_groups and self.model.training):
            return super()._prepare_inputs(generation_batch)
        steps = self.args.steps_per_generation
        if self._step % (steps * self.num_iterations) == 0 or self._buffered_inputs is None:
            batch = self._generate_and_score_completions(generation_batch)
            self._buffered_inputs = self._split_into_micro_batches(batch)
            if self._pi_old_deferred:
                self._old_logps_of_trained_rows(self._buffered_inputs)
        return self._buffered_inputs[self._step % steps]

    def _plan_generation_batch(self, num_rows: int) -> GenerationBatchPlan:
        args = self.args
        plan = plan_generation_batch(
            self._generation_labels.cpu(),
            self.num_generations,
            args.steps_per_generation,
            self.accelerator.num_processes,
            # Identical on every process, and stable across resumption: seeded by the step at generation.
            seed=args.seed + self.state.global_step,
            loss_type=self.loss_type if self._uses_real_loss else None,  # TRL's losses normalise themselves
            accumulation_steps=args.gradient_accumulation_steps,
            skip_rows=self.skips_rows,
        )
        if self._uses_real_loss:
            self._metrics["train"]["real/rows_skipped"].append(plan.skipped_share)
        return plan

    def _split_into_micro_batches(self, batch: dict) -> list[dict]:
        rank, device = self.accelerator.process_index, batch["completion_ids"].device
        local = batch["completion_ids"].size(0)
        plan = self._plan_generation_batch(local * self.accelerator.num_processes)
        mine = [step[rank].to(device) for step in plan.slots]
        if plan.denominators is not None:
            batch = {**batch, "real_denominators": plan.denominators.to(device)[local * rank : local * (rank + 1)]}
        rows = self._rows_from_all_processes(batch, torch.cat(mine))
        micro_batches, start = [], 0
        for step, wanted in zip(plan.slots, mine, strict=True):
            window = slice(start, start + wanted.numel())
            start = window.stop
            if wanted.numel():
                micro = trim_padding({k: v[window] if is_per_row(v) else v for k, v in rows.items()})
            else:
                micro = placeholder_row(batch)
            if self._uses_real_loss:
                micro["real_rows_max"] = torch.tensor(max(slot.numel() for slot in step))
            micro_batches.append(micro)
        return micro_batches

    def _rows_from_all_processes(self, batch: dict, wanted: torch.Tensor) -> dict:
        """The rows `wanted` (global indices) of every per-row entry of the generation batch."""
        if self.accelerator.num_processes == 1:
            return {key: value[wanted] if is_per_row(value) else value for key, value in batch.items()}
        lists = [key for key, value in batch.items() if isinstance(value, list)]
        if lists:  # GRPOTrainer puts lists in the batch for images only, which the constructor refuses
            raise ValueError(f"REAL moves tensors between processes, not the per-sample lists {lists} of this batch")
        moved = {}
        for key, value in batch.items():
            if not is_per_row(value):
                moved[key] = value
                continue
            if value.dim() > 1:
                pad = self._tokenizer.pad_token_id if key == "prompt_ids" else 0
                value = self.accelerator.pad_across_processes(value, dim=1, pad_index=pad, pad_first=key in PROMPT_KEYS)
            # One key at a time keeps the peak at one full-batch tensor.
            moved[key] = self.accelerator.gather(value.contiguous())[wanted]
        return moved

    # -- log-probs: the fused LM head's tile, and pi_old only for the rows that train ----------------

    @contextlib.contextmanager
    def _logprob_tiles(self):
        """For the REAL loss types, TRL's fused LM head projects `self._logprob_tile` tokens at a time while this
        is entered; TRL's tile comes back on exit, whatever happens. Its forward and its backward read the module
        global at call time, so the tile must hold from generation (pi_old) to the end of the backward."""
        if not self._uses_real_loss:
            yield
            return
        previous = chunked_logprob.TOKEN_CHUNK_SIZE
        chunked_logprob.TOKEN_CHUNK_SIZE = self._logprob_tile
        try:
            yield
        finally:
            chunked_logprob.TOKEN_CHUNK_SIZE = previous

    def training_step(self, model, inputs, num_items_in_batch):
        with self._logprob_tiles():  # generation and pi_old (inside _prepare_inputs), forward, backward
            return super().training_step(model, inputs, num_items_in_batch)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        with self._logprob_tiles():
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)

    def _defers_pi_old(self) -> bool:
        """Whether TRL's pi_old forward over every row of the generation batch gives way to REAL's over the rows
        that train, once the plan is made. TRL runs it when generation falls inside an optimizer step (its
        condition, less vLLM's). REAL needs pi_old only for the rows it trains, with their training padding
        (where no row is skipped: every row, the same cost as TRL's), and in evaluation not at all (pi_old is then
        the current policy). vLLM's importance-sampling correction keeps TRL's: its ratio and metrics cover
        every row."""
        generate_every = self.args.steps_per_generation * self.num_iterations
        trl_runs_it = self.args.gradient_accumulation_steps % generate_every != 0
        vllm_correction = self.use_vllm and self.vllm_importance_sampling_correction
        return self._uses_real_loss and trl_runs_it and not vllm_correction

    @contextlib.contextmanager
    def _pi_old_for_trained_rows_only(self):
        """Around TRL's generation: skip its pi_old call where `_defers_pi_old`; in training the trained rows
        then get theirs from `_old_logps_of_trained_rows`, once the plan is made."""
        deferred = self._defers_pi_old()
        self._skip_next_pi_old_call = deferred
        try:
            yield
        finally:
            self._skip_next_pi_old_call = False
        self._pi_old_deferred = deferred and self.model.training

    def _get_per_token_logps_and_entropies(self, model, *args, **kwargs):
        # TRL's pi_old call is the first one of its generation function (before the reference model's), no-grad
        if self._skip_next_pi_old_call and model is self.model and not torch.is_grad_enabled():
            self._skip_next_pi_old_call = False
            return None, None, None
        return super()._get_per_token_logps_and_entropies(model, *args, **kwargs)

    def _old_logps_of_trained_rows(self, micro_batches: list[dict]) -> None:
        """pi_old of the rows the plan trains: one no-grad forward per micro-step, with the padding of that
        micro-step's training forward, into `old_per_token_logps`. Every process runs one forward in each
        micro-step that has rows on any process (on its placeholder row where it has none, since ZeRO-3 and FSDP
        gather parameters inside each forward) and none in the others. It runs before the generation batch's
        first optimizer step, so pi_old is the policy that generated the batch, as TRL's is."""
        self._pi_old_deferred = False
        differences = [] if self._logs_sampling_difference(micro_batches[0]) else None
        with torch.no_grad(), disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs):
            for micro in micro_batches:
                if int(micro["real_rows_max"]) == 0:  # no rows on any process: no forward anywhere
                    continue
                completion_ids = micro["completion_ids"]
                old_per_token_logps, _, _ = self._get_per_token_logps_and_entropies(
                    self.model,
                    torch.cat([micro["prompt_ids"], completion_ids], dim=1),
                    torch.cat([micro["prompt_mask"], micro["completion_mask"]], dim=1),
                    completion_ids.size(1),
                )
                if "real_placeholder" not in micro:
                    micro["old_per_token_logps"] = old_per_token_logps
                    if differences is not None:
                        differences.append(self._sampling_logp_difference(micro, old_per_token_logps))
        if differences is not None:  # vLLM's distance to the trainer, over the rows that train
            self._log_sampling_logp_difference(differences)

    # -- the loss ------------------------------------------------------------------------------------

    def _compute_loss(self, model, inputs):
        if not self._uses_real_loss:
            return super()._compute_loss(model, inputs)
        mode = "train" if self.model.training else "eval"
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        mask = completion_mask if "tool_mask" not in inputs else completion_mask * inputs["tool_mask"]
        per_token_logps, entropies, aux_loss = self._get_per_token_logps_and_entropies(
            model,
            torch.cat([inputs["prompt_ids"], completion_ids], dim=1),
            torch.cat([inputs["prompt_mask"], completion_mask], dim=1),
            completion_ids.size(1),
            compute_entropy=True,
            compute_aux_loss=self.aux_loss_enabled,
        )
        token_mask = None
        if self.top_entropy_quantile < 1.0:
            token_mask = self.get_high_entropy_mask(entropies, mask, 1 - self.top_entropy_quantile)
        # Without a stored pi_old (one optimizer step per generation batch), pi_old is the current policy.
        old_per_token_logps = inputs.get("old_per_token_logps")
        if old_per_token_logps is None:
            old_per_token_logps = per_token_logps.detach()
        maskf = mask.to(per_token_logps.dtype)
        ref_kl = None if self.beta == 0.0 else self._reference_kl(inputs, per_token_logps, old_per_token_logps, maskf)
        scores = sequence_scores(per_token_logps, old_per_token_logps, mask, token_mask)
        local = self._sequence_stats(inputs, scores, per_token_logps, old_per_token_logps, entropies, maskf, ref_kl)
        table = self._gather_stats(local, inputs)
        batch_loss, weights = self._loss_and_weights(table)
        loss = self._surrogate(scores, weights, batch_loss, local.score.numel())

        if ref_kl is not None:  # GRPO's aggregation ("grpo"): token mean per sequence, then mean over sequences
            loss = loss + self.beta * ((ref_kl * maskf).sum(-1) / maskf.sum(-1).clamp(min=1.0)).mean()
        if self._entropy_bonus_enabled:
            bonus_mask = maskf if token_mask is None else maskf * token_mask
            loss = loss - self._entropy_coef_now(entropies, bonus_mask, mode) * (entropies * bonus_mask).sum() / (
                bonus_mask.sum().clamp(min=1.0)
            )
            self._metrics[mode]["policy_loss"].append(batch_loss.item())
        if self.aux_loss_enabled:
            loss = loss + self.router_aux_loss_coef * aux_loss
            self._metrics[mode]["aux_loss"].append(self.accelerator.gather_for_metrics(aux_loss).mean().item())
        if mode == "train":
            loss = loss / self.current_gradient_accumulation_steps  # GRPOTrainer scales for accumulation itself
        self._log_loss_statistics(table, weights, mode)
        return loss

    def _reference_kl(self, inputs, per_token_logps, old_per_token_logps, maskf) -> torch.Tensor:
        """GRPO's per-token KL penalty: k3 to the reference model, times the importance ratio pi_theta / pi_old
        (token- or sequence-level, as `importance_sampling_level` says) when `use_bias_correction_kl` is on."""
        ratio = None
        if self.args.use_bias_correction_kl:
            if self.importance_sampling_level == "sequence":
                ratio = torch.exp(sequence_scores(per_token_logps, old_per_token_logps, maskf)).unsqueeze(-1)
            else:
                ratio = torch.exp(per_token_logps - old_per_token_logps)
        return reference_kl(per_token_logps, inputs["ref_per_token_logps"], ratio)

    def _sequence_stats(
        self, inputs, scores, per_token_logps, old_per_token_logps, entropies, maskf, ref_kl
    ) -> SequenceStats:
        """The `SequenceStats` of this process's rows."""
        log_ratio = (per_token_logps.detach() - old_per_token_logps) * maskf
        stats = SequenceStats(
            score=scores.detach(),
            label=inputs["real_labels"],
            group=inputs["real_group_ids"],
            denominator=inputs["real_denominators"],
            entropy_sum=(entropies.detach() * maskf).sum(-1),
            num_tokens=maskf.sum(-1),
            approx_kl_sum=((torch.expm1(log_ratio) - log_ratio) * maskf).sum(-1),
            ref_kl_sum=torch.zeros_like(scores) if ref_kl is None else (ref_kl.detach() * maskf).sum(-1),
        )
        if "real_placeholder" in inputs:  # a pass that only keeps the processes in step: no rows
            return SequenceStats.from_table(stats.to_table()[:0])
        return stats

    def _gather_stats(self, local: SequenceStats, inputs) -> SequenceStats:
        """The statistics of the whole global micro-batch, on every process; slot p holds process p's rows."""
        table = local.to_table()
        if self.accelerator.num_processes == 1:
            return SequenceStats.from_table(table)
        rows_max = inputs.get("real_rows_max")
        if rows_max is None:  # evaluation: sizes are not planned
            rows_max = self.accelerator.gather(torch.tensor([table.size(0)], device=table.device)).max()
        blank = SequenceStats.blank_table(int(rows_max) - table.size(0), table.device)
        return SequenceStats.from_table(self.accelerator.gather(torch.cat([table, blank])))

    def _loss_and_weights(self, table: SequenceStats) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss of the global micro-batch and its exact weights dL/ds, the same on every process."""
        with torch.enable_grad():
            scores = table.score.clone().requires_grad_(True)
            loss = LOSSES[self.loss_type](
                scores, table.label.long(), table.group.long(), self.args.tau, table.denominator
            )
            (weights,) = torch.autograd.grad(loss, scores)
        return loss.detach(), weights

    def _surrogate(self, scores, weights, batch_loss, num_rows: int) -> torch.Tensor:
        """A loss whose value is the batch loss and whose gradient is sum_i w_i ds_i over the global batch."""
        start = self.accelerator.process_index * (weights.numel() // self.accelerator.num_processes)
        local_weights = torch.zeros_like(scores)
        local_weights[:num_rows] = weights[start : start + num_rows].to(scores.dtype)
        # Data-parallel wrappers average gradients over processes; each process carries its own rows'
        # share of the sum, so scale by the number of processes.
        surrogate = self.accelerator.num_processes * (local_weights * scores).sum()
        return surrogate - surrogate.detach() + batch_loss.to(scores.dtype)

    def _entropy_coef_now(self, entropies, bonus_mask, mode) -> float:
        """The entropy coefficient for this micro-step, as GRPOTrainer sets it (static, or adaptive: on only
        while the last optimizer step's world entropy was at or below `entropy_target`). GRPOTrainer runs its
        controller inline in `_compute_loss`; tests/test_trainer.py checks this one against it."""
        coef = self.entropy_coef
        if self.use_adaptive_entropy:
            if self._last_world_entropy > self.args.entropy_target:
                coef = 0.0
            if mode == "train":
                self._update_entropy_controller(entropies, bonus_mask)
        if mode == "train" and self.accelerator.sync_gradients:
            self._metrics[mode]["entropy_coef"].append(self.entropy_coef)
        return coef

    def _update_entropy_controller(self, entropies, bonus_mask) -> None:
        """Accumulate the token entropy of the optimizer step; at its end, step the coefficient towards
        keeping the world entropy at `entropy_target` (within [entropy_coef_min, entropy_coef_max])."""
        step_stats = torch.stack([(entropies.detach() * bonus_mask).sum(), bonus_mask.sum()])
        window = self._entropy_window_stats
        self._entropy_window_stats = step_stats if window is None else window + step_stats
        if not self.accelerator.sync_gradients:
            return
        total = self.accelerator.reduce(self._entropy_window_stats, reduction="sum")
        self._last_world_entropy = (total[0] / total[1].clamp(min=1.0)).item()
        args = self.args
        if self._last_world_entropy <= args.entropy_target:
            self.entropy_coef = min(self.entropy_coef + args.entropy_coef_delta, args.entropy_coef_max)
        else:
            self.entropy_coef = max(self.entropy_coef - args.entropy_coef_delta, args.entropy_coef_min)
        self._entropy_window_stats = None

    def _log_loss_statistics(self, table: SequenceStats, weights: torch.Tensor, mode: str) -> None:
        metrics = self._metrics[mode]
        total_tokens = table.num_tokens.sum().clamp(min=1.0)
        metrics["entropy"].append((table.entropy_sum.sum() / total_tokens).item())
        metrics["real/approx_kl"].append((table.approx_kl_sum.sum() / total_tokens).item())
        if self.beta != 0.0:
            metrics["kl"].append((table.ref_kl_sum.sum() / total_tokens).item())
        # Weights per group (REAL's W) or per sample (BCE), independent of the batch size.
        magnitude = weights.abs() * table.denominator
        for name, label in (("pos", 1), ("neg", 0)):
            members = table.label == label
            metrics[f"real/score_{name}"].append(_mean(table.score[members]))
            metrics[f"real/weight_{name}"].append(_mean(magnitude[members & (weights != 0)]))


def _weights_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype of the model's floating-point weights (what a colocated vLLM engine on CPU computes in)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def _mean(values: torch.Tensor) -> float:
    return values.mean().item() if values.numel() else float("nan")


def _image_refusal(setting: str, where: str) -> str:
    fix = "use a TRL loss type" if setting.startswith("loss_type") else "set whole_groups_per_step false"
    return f"{setting} does not take image inputs ({where} has them): {fix} for vision-language training"


def _refuse_images(train_dataset, eval_dataset, setting: str) -> None:
    """The group-level plan moves rows between processes and micro-steps, which GRPO's image tensors do not
    support: refuse a dataset that carries images, at construction."""
    named = {"train_dataset": train_dataset}
    if isinstance(eval_dataset, dict):
        named |= {f"eval_dataset[{key!r}]": value for key, value in eval_dataset.items()}
    else:
        named["eval_dataset"] = eval_dataset
    for where, dataset in named.items():
        columns = getattr(dataset, "column_names", None) or []
        image_columns = [column for column in IMAGE_COLUMNS if column in columns]
        if image_columns or _prompt_has_image(dataset):
            raise ValueError(_image_refusal(setting, where))


def _prompt_has_image(dataset) -> bool:
    """Whether the first prompt of a map-style dataset has an image part (`{"type": "image"}`) in a message."""
    if dataset is None or not hasattr(dataset, "__getitem__") or "prompt" not in (dataset.column_names or []):
        return False
    prompt = dataset[0]["prompt"] if len(dataset) else None
    messages = prompt if isinstance(prompt, list) else []
    return any(
        isinstance(part, dict) and part.get("type") == "image"
        for message in messages
        if isinstance(message, dict) and isinstance(message.get("content"), list)
        for part in message["content"]
    )
