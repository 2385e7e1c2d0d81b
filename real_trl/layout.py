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

import torch


def check_layout(micro_batch_size: int, num_processes: int, group_size: int) -> None:
    """Refuse a layout in which a micro-step cannot hold whole groups."""
    total = micro_batch_size * num_processes
    if total % group_size:
        raise ValueError(
            f"REAL needs whole groups in every micro-step: per_device_train_batch_size ({micro_batch_size}) x "
            f"num_processes ({num_processes}) = {total} must be a multiple of num_generations ({group_size}); "
            "change per_device_train_batch_size or num_generations."
        )


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
        raise ValueError(f"A micro-step of {groups_per_step * group_size} rows cannot be split over {num_processes} processes.")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(num_groups, generator=generator)
    rows = order.unsqueeze(1) * group_size + torch.arange(group_size)  # (num_groups, G), members in order
    return rows.reshape(num_micro_batches, num_processes, -1)


def group_ids_for_rows(rows: torch.Tensor, group_size: int) -> torch.Tensor:
    """Group id of each global row index (TRL's group-contiguous order)."""
    return torch.div(rows, group_size, rounding_mode="floor")
