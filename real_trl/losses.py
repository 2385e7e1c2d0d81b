"""REAL's objective as pure tensor functions (no TRL, no distributed code).

Notation (DESIGN.md section 1): a batch holds B completions; `group_ids[i]` names the prompt group of
completion i and `labels[i]` is 1 (positive: the verifier accepted it), 0 (negative) or -1 (excluded,
e.g. unscorable). The classifier logit of a completion is its relative log-probability

    s_i = mean_t [ log pi_theta(o_i,t) - log pi_old(o_i,t) ]

and a group with positives P and negatives N costs, with the anchor logit fixed at 0 on both sides,

    L_group = log(1 + sum_{i in P} exp(-s_i / tau)) + log(1 + sum_{j in N} exp(s_j / tau)).

Only groups with at least one positive and one negative carry signal; the others cost 0 but still
count in the denominator (the number of distinct groups in the batch), as in the paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "sequence_scores",
    "rewards_to_labels",
    "real_loss",
    "real_product_loss",
    "bce_loss",
    "real_gradient_weights",
    "LOSSES",
]


def sequence_scores(
    per_token_logps: torch.Tensor, old_per_token_logps: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Token-mean log-ratio of each completion over its mask: `s` in the paper. Shape (B,)."""
    mask = mask.to(per_token_logps.dtype)
    log_ratio = (per_token_logps - old_per_token_logps) * mask
    return log_ratio.sum(-1) / mask.sum(-1).clamp(min=1.0)


def rewards_to_labels(
    rewards_per_func: torch.Tensor, weights: torch.Tensor | None = None, threshold: float = 0.5
) -> torch.Tensor:
    """Class labels from verifier rewards.

    The weighted sum of the reward functions (ignoring NaN, i.e. functions that returned None) is
    compared with `threshold`: above it is a positive (1), at or below it a negative (0). A completion
    for which every function returned None is excluded (-1). With one 0/1 verifier and the default
    threshold 0.5 this is exactly the paper's rule (label = reward).
    """
    if rewards_per_func.dim() == 1:
        rewards_per_func = rewards_per_func.unsqueeze(1)
    if weights is None:
        weights = torch.ones(rewards_per_func.size(1))
    weights = weights.to(rewards_per_func)
    unscorable = torch.isnan(rewards_per_func).all(dim=1)
    total = (rewards_per_func * weights).nansum(dim=1)
    labels = (total > threshold).long()
    return labels.masked_fill(unscorable, -1)


def _group_logit_matrices(scores, labels, group_ids, tau):
    """Per-group logit rows: (K, B) matrices holding -s/tau for positives and s/tau for negatives of
    group k in row k, -inf elsewhere; the (K,) mask of groups that carry signal; each sample's group row."""
    unique_ids, group_index = torch.unique(group_ids, return_inverse=True)
    num_groups = unique_ids.numel()
    in_group = group_index.unsqueeze(0) == torch.arange(num_groups, device=scores.device).unsqueeze(1)
    pos = in_group & (labels == 1).unsqueeze(0)
    neg = in_group & (labels == 0).unsqueeze(0)
    z = scores / tau
    minus_inf = torch.full_like(z, float("-inf")).expand(num_groups, -1)
    pos_logits = torch.where(pos, -z.unsqueeze(0), minus_inf)
    neg_logits = torch.where(neg, z.unsqueeze(0), minus_inf)
    has_signal = pos.any(dim=1) & neg.any(dim=1)
    return pos_logits, neg_logits, has_signal, group_index


def _with_anchor(logits: torch.Tensor) -> torch.Tensor:
    return torch.cat([logits.new_zeros(logits.size(0), 1), logits], dim=1)


def _zero_with_grad(scores: torch.Tensor) -> torch.Tensor:
    # Keeps the autograd graph connected (e.g. for DDP's unused-parameter checks) without NaN.
    return (scores * 0.0).sum()


def real_loss(scores: torch.Tensor, labels: torch.Tensor, group_ids: torch.Tensor, tau: float) -> torch.Tensor:
    """REAL: anchored log-sum-exp loss, summed over signal-carrying groups / number of groups in the batch."""
    pos_logits, neg_logits, has_signal, _ = _group_logit_matrices(scores, labels, group_ids, tau)
    if not has_signal.any():
        return _zero_with_grad(scores)
    group_loss = torch.logsumexp(_with_anchor(pos_logits[has_signal]), dim=1) + torch.logsumexp(
        _with_anchor(neg_logits[has_signal]), dim=1
    )
    return group_loss.sum() / has_signal.numel() + _zero_with_grad(scores)


def real_product_loss(
    scores: torch.Tensor, labels: torch.Tensor, group_ids: torch.Tensor, tau: float
) -> torch.Tensor:
    """Product-style variant: softplus(LSE_neg(s/tau) + LSE_pos(-s/tau)) per group, same normalisation."""
    pos_logits, neg_logits, has_signal, _ = _group_logit_matrices(scores, labels, group_ids, tau)
    if not has_signal.any():
        return _zero_with_grad(scores)
    margin = torch.logsumexp(neg_logits[has_signal], dim=1) + torch.logsumexp(pos_logits[has_signal], dim=1)
    return F.softplus(margin).sum() / has_signal.numel() + _zero_with_grad(scores)


def bce_loss(scores: torch.Tensor, labels: torch.Tensor, group_ids: torch.Tensor, tau: float) -> torch.Tensor:
    """Vanilla BCE with logits s/tau and targets r, averaged over the samples of signal-carrying groups."""
    _, _, has_signal, group_index = _group_logit_matrices(scores, labels, group_ids, tau)
    keep = has_signal[group_index] & (labels >= 0)
    if not keep.any():
        return _zero_with_grad(scores)
    per_sample = F.binary_cross_entropy_with_logits(scores[keep] / tau, labels[keep].to(scores.dtype), reduction="none")
    return per_sample.mean() + _zero_with_grad(scores)


def real_gradient_weights(
    scores: torch.Tensor, labels: torch.Tensor, group_ids: torch.Tensor, tau: float
) -> torch.Tensor:
    """W_i = dL_group/ds_i, the weight REAL puts on each completion's score, in closed form.

    This is the gradient of the completion's own group loss (the paper's W), i.e. `real_loss`'s
    gradient times the number of groups in the batch. Positives get -(1/tau) e^{-s_i/tau} / (1 + sum_P
    e^{-s/tau}), negatives +(1/tau) e^{s_j/tau} / (1 + sum_N e^{s/tau}); |W| < 1/tau. Excluded samples
    and groups without signal get 0.
    """
    pos_logits, neg_logits, has_signal, _ = _group_logit_matrices(scores, labels, group_ids, tau)
    if not has_signal.any():
        return torch.zeros_like(scores)
    # softmax over [anchor, members]; column 0 is the anchor. Rows without signal are zeroed below.
    pos_share = torch.softmax(_with_anchor(pos_logits), dim=1)[:, 1:]
    neg_share = torch.softmax(_with_anchor(neg_logits), dim=1)[:, 1:]
    per_group = (neg_share - pos_share) / tau * has_signal.unsqueeze(1).to(scores.dtype)
    return per_group.sum(dim=0)


LOSSES = {"real": real_loss, "real_product": real_product_loss, "bce": bce_loss}
