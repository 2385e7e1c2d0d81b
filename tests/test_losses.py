import math
from dataclasses import fields

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from real_trl.losses import (
    LOSSES,
    SequenceStats,
    bce_loss,
    group_has_signal,
    real_gradient_weights,
    real_loss,
    real_product_loss,
    rewards_to_labels,
    sequence_scores,
    signal_rows,
)

# -- plain per-group references, float64, written from the paper's formulas --------------------------


def _groups(scores, labels, group_ids):
    """{group: (positive scores, negative scores)}; excluded samples are dropped."""
    out = {}
    for s, y, g in zip(scores.tolist(), labels.tolist(), group_ids.tolist(), strict=True):
        pos, neg = out.setdefault(g, ([], []))
        if y == 1:
            pos.append(s)
        elif y == 0:
            neg.append(s)
    return out


def ref_real(scores, labels, group_ids, tau):
    groups = _groups(scores, labels, group_ids)
    total = sum(
        math.log(1 + sum(math.exp(-s / tau) for s in pos)) + math.log(1 + sum(math.exp(s / tau) for s in neg))
        for pos, neg in groups.values()
        if pos and neg
    )
    return total / len(groups)


def ref_product(scores, labels, group_ids, tau):
    groups = _groups(scores, labels, group_ids)
    total = sum(
        math.log1p(
            math.exp(math.log(sum(math.exp(s / tau) for s in neg)) + math.log(sum(math.exp(-s / tau) for s in pos)))
        )
        for pos, neg in groups.values()
        if pos and neg
    )
    return total / len(groups)


def ref_bce(scores, labels, group_ids, tau):
    terms = []
    for pos, neg in _groups(scores, labels, group_ids).values():
        if pos and neg:
            terms += [math.log1p(math.exp(-s / tau)) for s in pos]  # -log sigmoid(s/tau)
            terms += [math.log1p(math.exp(s / tau)) for s in neg]  # -log(1 - sigmoid(s/tau))
    return sum(terms) / len(terms) if terms else 0.0


def random_batch(seed, num_groups=6, max_group=7, excluded=0.15):
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(1, max_group + 1, (num_groups,), generator=g)
    group_ids = torch.repeat_interleave(torch.arange(num_groups) * 3 + 5, sizes)  # non-contiguous ids
    n = group_ids.numel()
    scores = torch.randn(n, generator=g, dtype=torch.float64) * 0.7
    labels = torch.randint(0, 2, (n,), generator=g)
    labels[torch.rand(n, generator=g) < excluded] = -1
    perm = torch.randperm(n, generator=g)  # members of a group need not be adjacent
    return scores[perm], labels[perm], group_ids[perm]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("tau", [0.5, 1.0, 0.1])
@pytest.mark.parametrize(
    "loss, reference", [(real_loss, ref_real), (real_product_loss, ref_product), (bce_loss, ref_bce)]
)
def test_losses_match_per_group_reference(loss, reference, seed, tau):
    scores, labels, group_ids = random_batch(seed)
    got = loss(scores, labels, group_ids, tau).item()
    assert got == pytest.approx(reference(scores, labels, group_ids, tau), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_gradient_weights_match_autograd(seed):
    scores, labels, group_ids = random_batch(seed)
    scores.requires_grad_(True)
    (grad,) = torch.autograd.grad(real_loss(scores, labels, group_ids, 0.5), scores)
    num_groups = group_ids.unique().numel()
    torch.testing.assert_close(real_gradient_weights(scores.detach(), labels, group_ids, 0.5), grad * num_groups)


def test_gradient_weights_closed_form_on_a_known_group():
    scores = torch.tensor([0.2, -0.1, 0.3, 0.0], dtype=torch.float64)
    labels = torch.tensor([1, 1, 0, -1])
    weights = real_gradient_weights(scores, labels, torch.zeros(4, dtype=torch.long), tau=0.5)
    pos_den = 1 + math.exp(-0.4) + math.exp(0.2)
    assert weights[0].item() == pytest.approx(-2 * math.exp(-0.4) / pos_den)
    assert weights[1].item() == pytest.approx(-2 * math.exp(0.2) / pos_den)
    assert weights[2].item() == pytest.approx(2 * math.exp(0.6) / (1 + math.exp(0.6)))
    assert weights[3].item() == 0.0


def test_scores_are_token_means_of_the_log_ratio_over_the_mask():
    logps = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.5, -9.0]])
    old = torch.tensor([[-1.5, -2.0, -2.0], [-1.0, -1.0, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])
    torch.testing.assert_close(sequence_scores(logps, old, mask), torch.tensor([0.25, 0.5]))
    assert sequence_scores(logps, old, torch.zeros_like(mask)).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("loss", [real_loss, real_product_loss, bce_loss])
def test_stable_for_extreme_scores_in_float32(loss):
    tau = 0.5
    scores = torch.tensor([5e3, -5e3, 5e3, -5e3, 1.0, -1.0], requires_grad=True)  # |s / tau| = 1e4
    labels = torch.tensor([1, 1, 0, 0, 1, 0])
    group_ids = torch.tensor([0, 0, 0, 0, 1, 1])
    value = loss(scores, labels, group_ids, tau)
    (grad,) = torch.autograd.grad(value, scores)
    assert torch.isfinite(value) and torch.isfinite(grad).all()
    assert value.item() > 1e3  # the misranked pairs dominate, as they should


@pytest.mark.parametrize("loss", [real_loss, real_product_loss, bce_loss])
@pytest.mark.parametrize("labels", [[1, 1, 1, 1], [0, 0, 0, 0], [-1, -1, -1, -1], [1, -1, 0, -1]])
def test_batches_without_signal_give_zero_with_a_gradient_path(loss, labels):
    scores = torch.randn(4, requires_grad=True)
    value = loss(scores, torch.tensor(labels), torch.tensor([0, 0, 1, 1]), 0.5)
    value.backward()
    assert value.item() == 0.0
    assert scores.grad is not None and torch.equal(scores.grad, torch.zeros(4))
    assert torch.equal(
        real_gradient_weights(scores.detach(), torch.tensor(labels), torch.tensor([0, 0, 1, 1]), 0.5), torch.zeros(4)
    )


def test_degenerate_groups_count_in_the_denominator():
    scores = torch.zeros(4, dtype=torch.float64)
    one_group = real_loss(scores[:2], torch.tensor([1, 0]), torch.tensor([0, 0]), 1.0)
    with_solved_group = real_loss(scores, torch.tensor([1, 0, 1, 1]), torch.tensor([0, 0, 1, 1]), 1.0)
    assert one_group.item() == pytest.approx(2 * math.log(2))
    assert with_solved_group.item() == pytest.approx(one_group.item() / 2)


# -- properties ------------------------------------------------------------------------------------------

group_strategy = st.lists(
    st.tuples(st.floats(-30, 30, allow_nan=False), st.sampled_from([1, 0, -1])), min_size=2, max_size=10
)


@settings(max_examples=150, deadline=None)
@given(members=group_strategy, tau=st.floats(0.05, 5.0))
def test_weights_are_bounded_by_one_over_tau(members, tau):
    scores = torch.tensor([s for s, _ in members], dtype=torch.float64)
    labels = torch.tensor([y for _, y in members])
    weights = real_gradient_weights(scores, labels, torch.zeros(len(members), dtype=torch.long), tau)
    assert torch.isfinite(weights).all()
    # strictly below 1/tau in exact arithmetic; float64 rounds e^x / (1 + e^x) to 1 for x > ~37
    assert (weights.abs() <= 1 / tau).all()
    moderate = scores.abs() / tau < 30
    assert (weights.abs()[moderate] < 1 / tau).all()
    assert (weights[labels == 1] <= 0).all() and (weights[labels == 0] >= 0).all()


@settings(max_examples=150, deadline=None)
@given(members=group_strategy, tau=st.floats(0.1, 2.0), index=st.integers(0, 9), step=st.floats(0.01, 3.0))
def test_weights_are_monotone_in_the_score(members, tau, index, step):
    """Raising a positive's score lowers its weight; raising a negative's score raises it."""
    index = index % len(members)
    scores = torch.tensor([s for s, _ in members], dtype=torch.float64)
    labels = torch.tensor([y for _, y in members])
    group_ids = torch.zeros(len(members), dtype=torch.long)
    raised = scores.clone()
    raised[index] += step
    before = real_gradient_weights(scores, labels, group_ids, tau)[index].abs()
    after = real_gradient_weights(raised, labels, group_ids, tau)[index].abs()
    has_signal = (labels == 1).any() and (labels == 0).any()
    if not has_signal or labels[index] == -1:
        assert before == after == 0
    elif labels[index] == 1:
        assert after <= before
    else:
        assert after >= before


# -- labels ----------------------------------------------------------------------------------------------


def test_binary_rewards_are_the_labels():
    rewards = torch.tensor([[1.0], [0.0], [float("nan")]])
    assert rewards_to_labels(rewards).tolist() == [1, 0, -1]


def test_weighted_reward_functions_and_partial_credit_use_the_threshold():
    # accuracy (weight 1) + format (weight 0.2): only a correct answer clears 0.5
    rewards = torch.tensor([[1.0, 1.0], [0.0, 1.0], [1.0, float("nan")], [float("nan"), float("nan")], [0.7, 0.0]])
    labels = rewards_to_labels(rewards, torch.tensor([1.0, 0.2]), threshold=0.5)
    assert labels.tolist() == [1, 0, 1, -1, 1]
    assert rewards_to_labels(rewards, torch.tensor([1.0, 0.2]), threshold=0.8).tolist() == [1, 0, 1, -1, 0]


@pytest.mark.parametrize("loss", [real_loss, real_product_loss, bce_loss])
@pytest.mark.parametrize("seed", range(4))
def test_passes_over_parts_of_a_batch_add_up_to_the_batch_loss(loss, seed):
    scores, labels, group_ids = random_batch(seed)
    whole = loss(scores, labels, group_ids, 0.5)
    keep = signal_rows(labels, group_ids)
    count = keep.sum() if loss is bce_loss else group_ids.unique().numel()
    denominators = torch.full_like(scores, float(count))
    parts = group_ids % 2 == 0  # two passes of whole groups, rows without signal dropped
    total = sum(
        loss(scores[m & keep], labels[m & keep], group_ids[m & keep], 0.5, denominators[m & keep])
        for m in (parts, ~parts)
    )
    assert total.item() == pytest.approx(whole.item(), rel=1e-12)


def test_signal_rows_are_the_scored_members_of_mixed_groups():
    labels = torch.tensor([1, 0, -1, 1, 1, 0, 0, -1])
    group_ids = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    assert signal_rows(labels, group_ids).tolist() == [True, True, False, False, False, False, False, False]


def test_group_mean_labels_any_reward_scale():
    rewards = torch.tensor([3.0, 7.0, 5.0, 5.0, 2.0, 2.0, 2.0, float("nan")])
    labels = rewards_to_labels(rewards, rule="group_mean", group_size=4)
    # group 1: mean 5 -> below, above, tie, tie; group 2: all equal -> no signal; None stays excluded
    assert labels.tolist() == [0, 1, -1, -1, -1, -1, -1, -1]


def test_blank_rows_of_the_statistics_change_neither_the_loss_nor_the_metrics():
    stats = SequenceStats(*(torch.rand(4, dtype=torch.float64) for _ in fields(SequenceStats)))
    stats.label, stats.group = torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.tensor([3.0, 3.0, 5.0, 5.0])
    stats.denominator = torch.full((4,), 2.0, dtype=torch.float64)
    table = stats.to_table()
    blank = SequenceStats.blank_table(3, "cpu")
    assert blank.shape == (3, len(fields(SequenceStats)))
    padded = SequenceStats.from_table(torch.cat([table, blank]))
    scores = padded.score.clone().requires_grad_(True)
    for loss in LOSSES.values():
        value = loss(scores, padded.label.long(), padded.group.long(), 0.5, padded.denominator)
        (grad,) = torch.autograd.grad(value, scores)
        expected = loss(stats.score, stats.label.long(), stats.group.long(), 0.5, stats.denominator)
        torch.testing.assert_close(value.detach(), expected)
        assert (grad[4:] == 0).all()
    for name in ("entropy_sum", "num_tokens", "approx_kl_sum", "ref_kl_sum"):
        assert getattr(padded, name).sum() == getattr(stats, name).sum()


def test_a_group_has_signal_when_it_has_a_positive_and_a_negative():
    labels = torch.tensor([1, 0, 1, 1, 0, -1, 1, -1, 0, 0])
    group_ids = torch.tensor([7, 7, 2, 2, 4, 4, 9, 9, 9, 9])
    has_signal, group_index = group_has_signal(labels, group_ids)
    assert has_signal.tolist() == [False, False, True, True]  # groups 2, 4, 7, 9 in ascending order
    assert group_index.tolist() == [2, 2, 0, 0, 1, 1, 3, 3, 3, 3]
    assert signal_rows(labels, group_ids).tolist() == [True, True, False, False, False, False, True, False, True, True]
