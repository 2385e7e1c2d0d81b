"""REALTrainer: GRPOTrainer with REAL's objective.

For TRL's own loss types this is GRPOTrainer, unchanged. For the REAL loss types three hooks change:

* `_generate_and_score_completions` turns the gathered rewards into class labels and global group ids;
* `_prepare_inputs` plans the generation batch at group level (`layout.plan_micro_batches`) so every
  micro-step, over all processes together, holds whole groups, and moves rows to the process the plan
  gives them (once per generation batch);
* `_compute_loss` all-gathers only per-sequence values (score, label, group id and a few statistics),
  evaluates the loss of the whole global micro-batch on every process, and backpropagates the exact
  per-sample weights dL/ds through the local scores.

The backward pass goes through local tensors only (no autograd through collectives), so DDP, DeepSpeed
ZeRO and FSDP reduce the gradient as they would any data-parallel loss.
"""

from __future__ import annotations

import torch
from trl import GRPOTrainer

from real_trl.config import REALConfig
from real_trl.layout import group_ids_for_rows, plan_micro_batches
from real_trl.losses import LOSSES, rewards_to_labels, sequence_scores

# Per-sequence columns exchanged in the loss: everything REAL needs from other processes.
_STAT_COLUMNS = ("score", "label", "group", "entropy_sum", "num_tokens", "approx_kl_sum", "ref_kl_sum")
_PROMPT_KEYS = ("prompt_ids", "prompt_mask")
_COMPLETION_KEYS = (
    "completion_ids",
    "completion_mask",
    "tool_mask",
    "old_per_token_logps",
    "ref_per_token_logps",
    "sampling_per_token_logps",
    "importance_sampling_ratio",
)


class REALTrainer(GRPOTrainer):
    """Drop-in replacement for `trl.GRPOTrainer` that trains with REAL (see `REALConfig`)."""

    def __init__(self, model, reward_funcs=None, args: REALConfig | None = None, *positional, **kwargs):
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path
            args = REALConfig(f"{str(name).rstrip('/').split('/')[-1]}-REAL")
        self._uses_real_loss = getattr(args, "loss_type", None) in LOSSES
        if self._uses_real_loss and not reward_funcs and kwargs.get("environment_factory") is None:
            raise ValueError(
                "REAL labels each completion with its verifier reward: pass reward_funcs (e.g. real_trl.rewards.math_reward)."
            )
        super().__init__(model, reward_funcs, args, *positional, **kwargs)

    # -- generation: labels and group ids ------------------------------------------------------------

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        # Gathered over all processes (N_global, num_funcs); kept to derive labels from.
        self._rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        return self._rewards_per_func

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        group_size = self.num_generations if mode == "train" else self.num_generations_eval
        threshold = getattr(self.args, "label_threshold", 0.5)
        labels = rewards_to_labels(self._rewards_per_func, self.reward_weights, threshold)
        self._log_group_outcomes(labels.view(-1, group_size), mode)

        local = output["completion_ids"].size(0)
        rows = torch.arange(local, device=labels.device) + self.accelerator.process_index * local
        output["real_labels"] = labels[rows]
        output["real_group_ids"] = group_ids_for_rows(rows, group_size)
        return output

    def _log_group_outcomes(self, grouped_labels: torch.Tensor, mode: str) -> None:
        positives = (grouped_labels == 1).sum(1)
        negatives = (grouped_labels == 0).sum(1)
        scored = positives + negatives
        metrics = self._metrics[mode]
        metrics["groups/solve_all"].append(((positives == scored) & (scored > 0)).float().mean().item())
        metrics["groups/solve_none"].append(((negatives == scored) & (scored > 0)).float().mean().item())
        metrics["groups/with_signal"].append(((positives > 0) & (negatives > 0)).float().mean().item())

    # -- micro-step planning -------------------------------------------------------------------------

    def _prepare_inputs(self, generation_batch):
        if not (self._uses_real_loss and self.model.training):
            return super()._prepare_inputs(generation_batch)
        steps = self.args.steps_per_generation
        if self._step % (steps * self.num_iterations) == 0 or self._buffered_inputs is None:
            batch = self._generate_and_score_completions(generation_batch)
            self._buffered_inputs = self._split_into_micro_batches(batch)
        return self._buffered_inputs[self._step % steps]

    def _split_into_micro_batches(self, batch: dict) -> list[dict]:
        num_processes, rank = self.accelerator.num_processes, self.accelerator.process_index
        local = batch["completion_ids"].size(0)
        num_rows = local * num_processes
        # Identical on every process, and stable across resumption: seeded by the step at generation.
        plan = plan_micro_batches(
            num_groups=num_rows // self.num_generations,
            group_size=self.num_generations,
            num_micro_batches=self.args.steps_per_generation,
            num_processes=num_processes,
            seed=self.args.seed + self.state.global_step,
        )
        mine = plan[:, rank].reshape(-1).to(batch["completion_ids"].device)
        rows = self._rows_from_all_processes(batch, mine)
        per_step = mine.numel() // self.args.steps_per_generation
        micro_batches = []
        for k in range(self.args.steps_per_generation):
            window = slice(k * per_step, (k + 1) * per_step)
            micro = {key: value[window] if _is_per_row(value) else value for key, value in rows.items()}
            micro_batches.append(_trim_padding(micro))
        return micro_batches

    def _rows_from_all_processes(self, batch: dict, wanted: torch.Tensor) -> dict:
        """The rows `wanted` (global indices) of every per-row entry of the generation batch."""
        if self.accelerator.num_processes == 1:
            return {key: value[wanted] if _is_per_row(value) else value for key, value in batch.items()}
        moved = {}
        for key, value in batch.items():
            if isinstance(value, list):
                raise ValueError(
                    f"REAL cannot move the per-sample list {key!r} between processes: multimodal inputs train with "
                    "the REAL losses on a single process only. Launch one process or use a TRL loss type."
                )
            if not _is_per_row(value):
                moved[key] = value
                continue
            if value.dim() > 1:
                pad = self._tokenizer.pad_token_id if key == "prompt_ids" else 0
                value = self.accelerator.pad_across_processes(value, dim=1, pad_index=pad, pad_first=key in _PROMPT_KEYS)
            # One key at a time keeps the peak at one full-batch tensor.
            moved[key] = self.accelerator.gather(value.contiguous())[wanted]
        return moved

    # -- the loss ------------------------------------------------------------------------------------

    def _compute_loss(self, model, inputs):
        if not self._uses_real_loss:
            return super()._compute_loss(model, inputs)
        mode = "train" if self.model.training else "eval"
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        mask = completion_mask if "tool_mask" not in inputs else completion_mask * inputs["tool_mask"]
        per_token_logps, entropies, aux_loss = self._get_per_token_logps_and_entropies(
            model,
            torch.cat([prompt_ids, completion_ids], dim=1),
            torch.cat([prompt_mask, completion_mask], dim=1),
            completion_ids.size(1),
            compute_entropy=True,
            compute_aux_loss=self.aux_loss_enabled,
        )
        # Without a stored pi_old (one optimizer step per generation batch), pi_old is the current policy.
        old_per_token_logps = inputs.get("old_per_token_logps")
        if old_per_token_logps is None:
            old_per_token_logps = per_token_logps.detach()
        scores = sequence_scores(per_token_logps, old_per_token_logps, mask)
        maskf = mask.to(per_token_logps.dtype)
        num_tokens = maskf.sum(-1)
        log_ratio = (per_token_logps.detach() - old_per_token_logps) * maskf
        if self.beta != 0.0:
            ref_gap = inputs["ref_per_token_logps"] - per_token_logps
            per_token_kl = torch.exp(ref_gap) - ref_gap - 1
            ref_kl_sum = (per_token_kl * maskf).sum(-1)
        else:
            ref_kl_sum = torch.zeros_like(scores)
        local_stats = torch.stack(
            [
                scores.detach(),
                inputs["real_labels"].to(scores.dtype),
                inputs["real_group_ids"].to(scores.dtype),
                (entropies.detach() * maskf).sum(-1),
                num_tokens,
                ((torch.expm1(log_ratio) - log_ratio) * maskf).sum(-1),
                ref_kl_sum.detach(),
            ],
            dim=1,
        ).double()  # _STAT_COLUMNS, in float64: group ids and scores survive the exchange exactly
        stats = self.accelerator.gather(local_stats) if self.accelerator.num_processes > 1 else local_stats

        # The loss of the whole global micro-batch, on every process, and its exact weights dL/ds.
        with torch.enable_grad():
            all_scores = stats[:, 0].clone().requires_grad_(True)
            labels, group_ids = stats[:, 1].long(), stats[:, 2].long()
            batch_loss = LOSSES[self.loss_type](all_scores, labels, group_ids, self.args.tau)
            (weights,) = torch.autograd.grad(batch_loss, all_scores)
        start = self.accelerator.process_index * scores.size(0)
        local_weights = weights[start : start + scores.size(0)].to(scores.dtype)
        # Data-parallel wrappers average gradients over processes; each process carries its own rows'
        # share of the sum, so scale by the number of processes. The value stays the batch loss.
        surrogate = self.accelerator.num_processes * (local_weights * scores).sum()
        loss = surrogate - surrogate.detach() + batch_loss.detach().to(scores.dtype)

        if self.beta != 0.0:
            loss = loss + self.beta * (ref_kl_sum / num_tokens.clamp(min=1.0)).mean()
        if self.entropy_coef != 0.0:
            loss = loss - self.entropy_coef * (entropies * maskf).sum() / maskf.sum().clamp(min=1.0)
        if self.aux_loss_enabled:
            loss = loss + self.router_aux_loss_coef * aux_loss
        if mode == "train":
            loss = loss / self.current_gradient_accumulation_steps  # GRPOTrainer scales for accumulation itself

        self._log_loss_statistics(stats, weights, labels, group_ids, mode)
        return loss

    def _log_loss_statistics(self, stats, weights, labels, group_ids, mode):
        metrics = self._metrics[mode]
        scores, num_tokens = stats[:, 0], stats[:, 4].clamp(min=1.0)
        total_tokens = num_tokens.sum()
        metrics["entropy"].append((stats[:, 3].sum() / total_tokens).item())
        metrics["real/approx_kl"].append((stats[:, 5].sum() / total_tokens).item())
        if self.beta != 0.0:
            metrics["kl"].append((stats[:, 6].sum() / total_tokens).item())
        # Report weights per group (REAL's W, independent of the batch size): the batch losses divide by
        # the number of groups, BCE by the number of samples it averages over.
        if self.loss_type == "bce":
            contributing = weights != 0
            scale = contributing.sum().clamp(min=1)
        else:
            scale = torch.unique(group_ids).numel()
        magnitude = weights.abs() * scale
        for name, label in (("pos", 1), ("neg", 0)):
            members = labels == label
            metrics[f"real/score_{name}"].append(_mean(scores[members]))
            in_signal = members & (weights != 0)
            metrics[f"real/weight_{name}"].append(_mean(magnitude[in_signal]))


def _is_per_row(value) -> bool:
    return isinstance(value, torch.Tensor) and value.dim() > 0


def _mean(values: torch.Tensor) -> float:
    return values.mean().item() if values.numel() else float("nan")


def _trim_padding(micro: dict) -> dict:
    """Drop the padding columns no row of this micro-batch uses (left of prompts, right of completions)."""
    prompt_width = int(micro["prompt_mask"].sum(1).max().item())
    completion_width = max(int(micro["completion_mask"].sum(1).max().item()), 1)
    trimmed = dict(micro)
    for key in _PROMPT_KEYS:
        trimmed[key] = micro[key][:, micro[key].size(1) - prompt_width :]
    for key in _COMPLETION_KEYS:
        value = micro.get(key)
        if isinstance(value, torch.Tensor) and value.dim() == 2 and value.size(1) == micro["completion_ids"].size(1):
            trimmed[key] = value[:, :completion_width]
    return trimmed
