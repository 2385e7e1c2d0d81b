import pytest
import torch

from real_trl.layout import (
    check_layout,
    group_ids_for_rows,
    plan_generation_batch,
    plan_micro_batches,
    plan_signal_micro_batches,
)
from real_trl.losses import loss_denominator


@pytest.mark.parametrize(
    "num_groups, group_size, steps, processes",
    [(16, 8, 4, 8), (8, 4, 4, 2), (12, 2, 4, 3), (6, 4, 3, 4), (4, 2, 2, 1)],
)
def test_every_micro_step_holds_whole_groups_and_every_row_once(num_groups, group_size, steps, processes):
    plan = plan_micro_batches(num_groups, group_size, steps, processes, seed=3)
    assert plan.shape[:2] == (steps, processes)
    assert sorted(plan.flatten().tolist()) == list(range(num_groups * group_size))
    for step in plan:
        groups, counts = group_ids_for_rows(step.flatten(), group_size).unique(return_counts=True)
        assert (counts == group_size).all()
        assert groups.numel() == num_groups // steps


def test_plan_does_not_depend_on_the_number_of_processes():
    one = plan_micro_batches(8, 4, 4, 1, seed=11)
    two = plan_micro_batches(8, 4, 4, 2, seed=11)
    assert torch.equal(one.reshape(4, -1), two.reshape(4, -1))


def test_plan_shuffles_groups_and_follows_the_seed():
    assert torch.equal(plan_micro_batches(32, 2, 8, 1, seed=0), plan_micro_batches(32, 2, 8, 1, seed=0))
    assert not torch.equal(plan_micro_batches(32, 2, 8, 1, seed=0), plan_micro_batches(32, 2, 8, 1, seed=1))


def test_impossible_layouts_are_refused_with_the_settings_to_change():
    with pytest.raises(ValueError, match=r"per_device_train_batch_size .*num_generations"):
        check_layout(micro_batch_size=3, num_processes=2, group_size=4)
    with pytest.raises(ValueError, match="micro-steps"):
        plan_micro_batches(6, 4, 4, 1, seed=0)


@pytest.mark.parametrize("accumulation_steps, processes", [(1, 1), (2, 2), (4, 3), (4, 1)])
def test_skipping_keeps_each_optimizer_steps_groups_whole_and_balanced(accumulation_steps, processes):
    group_size, steps = 4, 8
    plan = plan_micro_batches(
        num_groups=24, group_size=group_size, num_micro_batches=steps, num_processes=processes, seed=5
    )
    keep = torch.rand(plan.numel(), generator=torch.Generator().manual_seed(0)) < 0.6
    slots = plan_signal_micro_batches(plan, keep, group_size, accumulation_steps)
    assert len(slots) == steps and all(len(step) == processes for step in slots)
    for start in range(0, steps, accumulation_steps):
        window = range(start, start + accumulation_steps)
        planned = plan[start : start + accumulation_steps].reshape(-1)
        kept = torch.cat([torch.cat(slots[k]) for k in window])
        assert sorted(kept.tolist()) == sorted(planned[keep[planned]].tolist())  # the same rows, each once
        for k in window:  # a group's kept rows share one micro-step
            groups = group_ids_for_rows(torch.cat(slots[k]), group_size)
            others = [row for j in window if j != k for slot in slots[j] for row in slot.tolist()]
            assert not set(groups.tolist()) & {row // group_size for row in others}
            sizes = [slot.numel() for slot in slots[k]]
            assert max(sizes) - min(sizes) <= 1
        loads = [sum(slot.numel() for slot in slots[k]) for k in window]
        assert max(loads) - min(loads) <= group_size  # greedy balance: within one group's rows


def test_skipping_everything_leaves_empty_micro_steps():
    plan = plan_micro_batches(num_groups=4, group_size=2, num_micro_batches=2, num_processes=2, seed=0)
    slots = plan_signal_micro_batches(plan, torch.zeros(8, dtype=torch.bool), group_size=2, accumulation_steps=2)
    assert all(slot.numel() == 0 for step in slots for slot in step)


def test_plan_of_a_generation_batch_keeps_each_row_its_denominator_and_skips_rows_without_signal():
    # 8 groups of 4, 4 micro-steps of 2 groups, 2 optimizer steps of 2 micro-steps, 2 processes.
    # Groups 0-3 have signal; group 4 is all correct, group 5 all wrong, 6 and 7 have signal but one
    # excluded row each.
    labels = torch.tensor(
        [1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, -1, 0, 0, -1, 0, 1, 1]
    )
    arguments = {"loss_type": "real", "accumulation_steps": 2}
    full = plan_generation_batch(labels, 4, 4, 2, seed=5, skip_rows=False, **arguments)
    grouped = plan_micro_batches(8, 4, 4, 2, seed=5)
    assert [[slot.tolist() for slot in step] for step in full.slots] == grouped.tolist()
    assert torch.equal(full.denominators, torch.full((32,), 2.0, dtype=torch.float64))  # 2 groups per micro-step
    assert full.skipped_share == 0.0

    skipping = plan_generation_batch(labels, 4, 4, 2, seed=5, skip_rows=True, **arguments)
    assert torch.equal(skipping.denominators, full.denominators)
    trained = torch.cat([slot for step in skipping.slots for slot in step])
    assert sorted(trained.tolist()) == [row for row in range(32) if row // 4 not in (4, 5) and labels[row] >= 0]
    assert skipping.skipped_share == pytest.approx(10 / 32)
    for start in (0, 2):  # each optimizer step keeps the groups the full plan gave it
        planned = {row // 4 for step in grouped[start : start + 2] for row in step.flatten().tolist()}
        kept = {row // 4 for step in skipping.slots[start : start + 2] for slot in step for row in slot.tolist()}
        assert kept == planned - {4, 5}

    bce = plan_generation_batch(labels, 4, 4, 2, seed=5, skip_rows=False, loss_type="bce", accumulation_steps=2)
    for step in grouped:  # BCE divides by the scored rows of the micro-step's groups with signal
        rows = step.flatten()
        assert (bce.denominators[rows] == loss_denominator("bce", labels[rows], rows // 4)).all()
