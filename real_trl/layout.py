"""Group-level planning of a generation batch into micro-steps (pure functions, no TRL).

TRL generates a batch of N = num_groups * group_size completions, laid out group-contiguously over
the processes (process p holds rows p*N/W .. (p+1)*N/W - 1 of the global order, group g is rows
g*G .. g*G+G-1), then shuffles rows and slices them into micro-steps. REAL's loss couples the members
of a group, so instead we shuffle *groups* and give every micro-step, over all processes together,
whole groups. A plan depends only on the seed and the global batch shape, not on the number of
processes, so a run on W processes takes exactly the optimizer steps a single-process run with W
times the per-device batch would take.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from real_trl.losses import loss_denominator, signal_rows

# The per-row entries of a TRL generation batch that are padded on the left (prompts) or right (completions).
PROMPT_KEYS = ("prompt_ids", "prompt_mask")
COMPLETION_KEYS = (
    "completion_ids",
    "completion_mask",
    "tool_mask",
    "old_per_token_logps",
    "ref_per_token_logps",
    "sampling_per_token_logps",
    "importance_sampling_ratio",
)


def whole_group_problem(micro_batch_size: int, num_processes: int, group_size: int) -> str | None:
    """The whole-group rule of the group-level plan (the REAL losses, and TRL's with `whole_groups_per_step`),
    or None when it holds. The config and the launcher's plan both state it in these words."""
    total = micro_batch_size * num_processes
    if total % group_size == 0:
        return None
    return (
        "the group-level plan (REAL losses, whole_groups_per_step) needs whole groups in every micro-step: "
        f"per_device_train_batch_size ({micro_batch_size}) x "
        f"num_processes ({num_processes}) = {total} must be a multiple of num_generations ({group_size}); "
        "change per_device_train_batch_size or num_generations."
    )


def check_layout(micro_batch_size: int, num_processes: int, group_size: int) -> None:
    """Refuse a layout in which a micro-step cannot hold whole groups (`whole_group_problem`)."""
    problem = whole_group_problem(micro_batch_size, num_processes, group_size)
    if problem:
        raise ValueError(problem)


@dataclass(frozen=True)
class GenerationBatchPlan:
    """Where each row of a generation batch trains, and what its loss is divided by.

    slots[k][p] holds the global rows process p trains on in micro-step k (possibly none);
    `denominators[row]` is the denominator of the row's loss (`loss_denominator` of the micro-step the
    group plan first gave it; None for TRL's loss types); `skipped_share` is the share of rows left out.
    """

    slots: list[list[torch.Tensor]]
    denominators: torch.Tensor | None
    skipped_share: float


def plan_generation_batch(
    labels: torch.Tensor,
    group_size: int,
    num_micro_steps: int,
    num_processes: int,
    seed: int,
    *,
    loss_type: str | None,
    accumulation_steps: int,
    skip_rows: bool,
) -> GenerationBatchPlan:
    """Plan a generation batch into micro-steps of whole groups (`plan_micro_batches`) and, with
    `skip_rows`, leave out the rows that carry no gradient (`plan_signal_micro_batches`).

    Args:
        labels: (N,) labels of the global generation batch in TRL's group-contiguous order.
        group_size, num_micro_steps, num_processes, seed: as in `plan_micro_batches`.
        loss_type: the REAL loss whose denominators the rows keep (`loss_denominator`), or None for TRL's
            loss types, which normalise their loss themselves (`denominators` is then None).
        accumulation_steps: micro-steps per optimizer step.
        skip_rows: drop the rows of groups without signal and the excluded rows.
    """
    num_rows = labels.numel()
    plan = plan_micro_batches(num_rows // group_size, group_size, num_micro_steps, num_processes, seed)
    group_ids = group_ids_for_rows(torch.arange(num_rows), group_size)
    denominators = None
    if loss_type is not None:
        # Each row keeps the denominator of the micro-step the plan first gave it, so that moving rows
        # between the micro-steps of one optimizer step leaves the optimizer's gradient unchanged.
        denominators = torch.empty(num_rows, dtype=torch.float64)
        for step_rows in plan.reshape(num_micro_steps, -1):
            denominators[step_rows] = loss_denominator(loss_type, labels[step_rows], group_ids[step_rows])
    if not skip_rows:
        return GenerationBatchPlan([list(step) for step in plan], denominators, 0.0)
    keep = signal_rows(labels, group_ids)
    slots = plan_signal_micro_batches(plan, keep, group_size, accumulation_steps)
    return GenerationBatchPlan(slots, denominators, 1.0 - keep.double().mean().item())


def plan_micro_batches(
    num_groups: int, group_size: int, num_micro_batches: int, num_processes: int, seed: int
) -> torch.Tensor:
    """Global row indices of each (micro-step, process) slot: a (num_micro_batches, num_processes,
    per_process) tensor. Micro-step k holds groups perm[k*q : (k+1)*q], members in order, cut into
    equal per-process slices (a group may span processes)."""
    if num_groups % num_micro_batches:
        raise ValueError(f"{num_groups} groups cannot be split evenly into {num_micro_batches} micro-steps.")
    groups_per_step = num_groups // num_micro_batches
    if groups_per_step * group_size % num_processes:
        raise ValueError(
            f"A micro-step of {groups_per_step * group_size} rows cannot be split over {num_processes} processes."
        )
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(num_groups, generator=generator)
    rows = order.unsqueeze(1) * group_size + torch.arange(group_size)  # (num_groups, G), members in order
    return rows.reshape(num_micro_batches, num_processes, -1)


def group_ids_for_rows(rows: torch.Tensor, group_size: int) -> torch.Tensor:
    """Group id of each global row index (TRL's group-contiguous order)."""
    return torch.div(rows, group_size, rounding_mode="floor")


def plan_signal_micro_batches(
    plan: torch.Tensor, keep: torch.Tensor, group_size: int, accumulation_steps: int
) -> list[list[torch.Tensor]]:
    """Drop the rows that carry no gradient and spread the others over the same micro-steps.

    Each optimizer step (`accumulation_steps` consecutive micro-steps of `plan`) keeps its own groups:
    the kept rows of each of its groups go, whole, to the micro-step with the fewest rows so far, and
    each micro-step is cut into near-equal per-process slices (a group may span processes). The
    optimizer step therefore sees the same groups as without skipping, in fewer rows.

    Args:
        plan: (num_micro_batches, num_processes, per_process) global rows, from `plan_micro_batches`.
        keep: (num_rows,) bool over global rows: the rows that carry a gradient.
        group_size: rows per group.
        accumulation_steps: micro-steps per optimizer step; must divide num_micro_batches.

    Returns:
        slots[k][p]: 1-D tensor of the global rows process p trains on in micro-step k (may be empty).
    """
    num_micro_batches, num_processes, _ = plan.shape
    if num_micro_batches % accumulation_steps:
        raise ValueError(f"{num_micro_batches} micro-steps are not whole optimizer steps of {accumulation_steps}.")
    slots = []
    for start in range(0, num_micro_batches, accumulation_steps):
        groups = plan[start : start + accumulation_steps].reshape(-1, group_size)
        members: list[list[torch.Tensor]] = [[] for _ in range(accumulation_steps)]
        loads = [0] * accumulation_steps
        for group in groups:
            rows = group[keep[group]]
            if rows.numel():
                lightest = loads.index(min(loads))
                members[lightest].append(rows)
                loads[lightest] += rows.numel()
        for rows in members:
            step_rows = torch.cat(rows) if rows else plan.new_empty(0)
            slots.append(list(torch.tensor_split(step_rows, num_processes)))
    return slots


def is_per_row(value) -> bool:
    """Whether a generation-batch entry holds one value per row (a tensor with a batch dimension)."""
    return isinstance(value, torch.Tensor) and value.dim() > 0


def placeholder_row(batch: dict) -> dict:
    """One row cut to one prompt and one completion token. A process with no rows in a micro-step still
    runs a forward and backward pass (DDP, ZeRO-3 and FSDP need every process in step); this one has no
    statistics and weight 0, so it contributes exactly zero."""
    row = {key: value[:1] if is_per_row(value) else value for key, value in batch.items()}
    for key in PROMPT_KEYS:
        row[key] = row[key][:, -1:]
    for key in COMPLETION_KEYS:
        if isinstance(row.get(key), torch.Tensor) and row[key].dim() == 2:
            row[key] = row[key][:, :1]
    row["prompt_mask"] = torch.ones_like(row["prompt_mask"])
    row["completion_mask"] = torch.ones_like(row["completion_mask"])
    row["real_placeholder"] = torch.tensor(True)
    return row


def trim_padding(micro: dict) -> dict:
    """Drop the padding columns no row of this micro-batch uses (left of prompts, right of completions)."""
    prompt_width = int(micro["prompt_mask"].sum(1).max().item())
    completion_width = max(int(micro["completion_mask"].sum(1).max().item()), 1)
    trimmed = dict(micro)
    for key in PROMPT_KEYS:
        trimmed[key] = micro[key][:, micro[key].size(1) - prompt_width :]
    for key in COMPLETION_KEYS:
        value = micro.get(key)
        if isinstance(value, torch.Tensor) and value.dim() == 2 and value.size(1) == micro["completion_ids"].size(1):
            trimmed[key] = value[:, :completion_width]
    return trimmed
