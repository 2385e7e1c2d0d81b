import pytest
import torch

from real_trl.layout import check_layout, group_ids_for_rows, plan_micro_batches


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
    with pytest.raises(ValueError, match="per_device_train_batch_size .*num_generations"):
        check_layout(micro_batch_size=3, num_processes=2, group_size=4)
    with pytest.raises(ValueError, match="micro-steps"):
        plan_micro_batches(6, 4, 4, 1, seed=0)
