"""REAL's objective as pure tensor functions (no TRL, no distributed code).

A batch holds B completions; `group_ids[i]` names the prompt group of completion i and `labels[i]` is
1 (positive: the verifier accepted it), 0 (negative) or -1 (excluded, e.g. unscorable). The classifier
logit of a completion is its relative log-probability

    s_i = mean_t [ log pi_theta(o_i,t) - log pi_old(o_i,t) ]

and a group with positives P and negatives N costs, with the anchor logit fixed at 0 on both sides,

    L_group = log(1 + sum_{i in P} exp(-s_i / tau)) + log(1 + sum_{j in N} exp(s_j / tau)).

Only groups with at least one positive and one negative carry signal; the others cost 0 but still
count in the denominator (the number of distinct groups in the batch), as in the paper. See
docs/method.md for the derivation and the two ablation variants.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields

import torch
import torch.nn.functional as F

__all__ = [
    "LABEL_RULES",
    "LOSSES",
    "REAL_LOSS_TYPES",
    "SequenceStats",
    "bce_loss",
    "group_has_signal",
    "loss_denominator",
    "real_gradient_weights",
    "real_loss",
    "real_product_loss",
    "reference_kl",
    "rewards_to_labels",
    "sequence_scores",
    "signal_rows",
]

LABEL_RULES = ("threshold", "group_mean")


def sequence_scores(
    per_token_logps: torch.Tensor,
    old_per_token_logps: torch.Tensor,
    mask: torch.Tensor,
    token_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Token-mean log-ratio of each completion: `s` in the paper.

    Args:
        per_token_logps: (B, T) log-probabilities of the completion tokens under the current policy.
        old_per_token_logps: (B, T) the same under the policy that generated the batch.
        mask: (B, T) 1 for completion tokens, 0 for padding; the mean divides by its row sums.
        token_mask: optional (B, T) subset of `mask` whose tokens carry the log-ratio (e.g. TRL's
            high-entropy tokens); the others count in the mean as zeros, as in TRL's masked losses.

    Returns:
        (B,) scores.
    """
    mask = mask.to(per_token_logps.dtype)
    carried = mask if token_mask is None else mask * token_mask.to(mask.dtype)
    log_ratio = (per_token_logps - old_per_token_logps) * carried
    return log_ratio.sum(-1) / mask.sum(-1).clamp(min=1.0)


def rewards_to_labels(
    rewards_per_func: torch.Tensor,
    weights: torch.Tensor | None = None,
    threshold: float = 0.5,
    rule: str = "threshold",
    group_size: int | None = None,
) -> torch.Tensor:
    """Class labels from verifier rewards.

    Args:
        rewards_per_func: (B, F) rewards of F reward functions (or (B,) for one), NaN where a function
            returned None. Rows are group-contiguous: group g is rows g*group_size .. (g+1)*group_size-1.
        weights: (F,) reward weights; default all ones. A row's reward is the weighted sum over the
            functions that scored it.
        threshold: with rule "threshold", a row is positive (1) when its reward exceeds this, else 0.
            With one 0/1 verifier and 0.5 the label is the reward: the paper's rule.
        rule: "threshold", or "group_mean": positive (1) above the mean reward of its group's scorable
            members, negative (0) below it, excluded (-1) when equal to it, so ties and all-equal groups
            carry no signal. It makes any reward scale usable (an extension beyond the paper).
        group_size: rows per group; needed by "group_mean".

    Returns:
        (B,) long labels in {1, 0, -1}; -1 for rows every function returned None for.
    """
    if rewards_per_func.dim() == 1:
        rewards_per_func = rewards_per_func.unsqueeze(1)
    if weights is None:
        weights = torch.ones(rewards_per_func.size(1))
    weights = weights.to(rewards_per_func)
    unscorable = torch.isnan(rewards_per_func).all(dim=1)
    total = (rewards_per_func * weights).nansum(dim=1)
    if rule == "threshold":
        labels = (total > threshold).long()
    elif rule == "group_mean":
        if not group_size:
            raise ValueError("label rule 'group_mean' needs the group size.")
        grouped = total.masked_fill(unscorable, float("nan")).view(-1, group_size)
        mean = grouped.nanmean(dim=1, keepdim=True)
        labels = torch.where(grouped > mean, 1, torch.where(grouped < mean, 0, -1)).view(-1)
    else:
        raise ValueError(f"Unknown label rule {rule!r}; choose one of {', '.join(LABEL_RULES)}.")
    return labels.masked_fill(unscorable, -1)


def group_has_signal(labels: torch.Tensor, group_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Which groups carry signal: those with at least one positive and one negative.

    This is the one statement of the rule. Every loss here costs 0 on the other groups and gives their
    rows exactly zero gradient; the trainer skips those rows and logs the share of groups with signal.

    Args:
        labels: (B,) long, 1 positive, 0 negative, -1 excluded.
        group_ids: (B,) ids of the prompt groups; members need not be adjacent.

    Returns:
        (K,) bool over the K distinct group ids in ascending order, and (B,) each row's index into them.
    """
    unique_ids, group_index = torch.unique(group_ids, return_inverse=True)

    def count(rows: torch.Tensor) -> torch.Tensor:
        counts = torch.zeros(unique_ids.numel(), dtype=torch.long, device=labels.device)
        return counts.index_add(0, group_index, rows.long())

    return (count(labels == 1) > 0) & (count(labels == 0) > 0), group_index


def _group_logit_matrices(scores, labels, group_ids, tau):
    """Per-group logit rows: (K, B) matrices holding -s/tau for positives and s/tau for negatives of
    group k in row k, -inf elsewhere; the (K,) mask of groups that carry signal; each sample's group row."""
    has_signal, group_index = group_has_signal(labels, group_ids)
    in_group = group_index.unsqueeze(0) == torch.arange(has_signal.numel(), device=scores.device).unsqueeze(1)
    z = scores / tau
    minus_inf = torch.full_like(z, float("-inf")).expand(has_signal.numel(), -1)
    pos_logits = torch.where(in_group & (labels == 1).unsqueeze(0), -z.unsqueeze(0), minus_inf)
    neg_logits = torch.where(in_group & (labels == 0).unsqueeze(0), z.unsqueeze(0), minus_inf)
    return pos_logits, neg_logits, has_signal, group_index


def _with_anchor(logits: torch.Tensor) -> torch.Tensor:
    return torch.cat([logits.new_zeros(logits.size(0), 1), logits], dim=1)


def _zero_with_grad(scores: torch.Tensor) -> torch.Tensor:
    # Keeps the autograd graph connected (e.g. for DDP's unused-parameter checks) without NaN.
    return (scores * 0.0).sum()


_LOSS_ARGS = """
    Args:
        scores: (B,) scores `s` (see `sequence_scores`); the loss is differentiable in them.
        labels: (B,) long, 1 positive, 0 negative, -1 excluded (no gradient).
        group_ids: (B,) ids of the prompt groups; members need not be adjacent.
        tau: temperature > 0 of the logit s / tau.
        denominators: optional (B,) normalisers, equal within a group: each group's (for BCE each
            sample's) loss is divided by its row's value. Default: the batch's own count, i.e. the number
            of distinct groups (BCE: of samples in groups with signal). A caller that processes one batch
            in several passes gives the whole batch's counts, so the passes add up to the batch loss.

    Returns:
        A scalar; 0 with a gradient path (zero gradient) when no group carries signal.
"""


def _per_group(values: torch.Tensor, group_index: torch.Tensor, num_groups: int) -> torch.Tensor:
    return values.new_zeros(num_groups).scatter(0, group_index, values)


def _group_sum(group_loss, has_signal, group_index, denominators):
    """sum over groups with signal of loss / denominator; `group_loss` holds those groups only."""
    if denominators is None:
        return group_loss.sum() / has_signal.numel()
    per_group = _per_group(denominators.to(group_loss.dtype), group_index, has_signal.numel())
    return (group_loss / per_group[has_signal]).sum()


def real_loss(
    scores: torch.Tensor,
    labels: torch.Tensor,
    group_ids: torch.Tensor,
    tau: float,
    denominators: torch.Tensor | None = None,
) -> torch.Tensor:
    """REAL: the anchored log-sum-exp loss of every group with signal, summed, over the number of groups."""
    pos_logits, neg_logits, has_signal, group_index = _group_logit_matrices(scores, labels, group_ids, tau)
    if not has_signal.any():
        return _zero_with_grad(scores)
    group_loss = torch.logsumexp(_with_anchor(pos_logits[has_signal]), dim=1) + torch.logsumexp(
        _with_anchor(neg_logits[has_signal]), dim=1
    )
    return _group_sum(group_loss, has_signal, group_index, denominators) + _zero_with_grad(scores)


def real_product_loss(
    scores: torch.Tensor,
    labels: torch.Tensor,
    group_ids: torch.Tensor,
    tau: float,
    denominators: torch.Tensor | None = None,
) -> torch.Tensor:
    """Product-style variant: softplus(LSE_neg(s/tau) + LSE_pos(-s/tau)) per group, same normalisation."""
    pos_logits, neg_logits, has_signal, group_index = _group_logit_matrices(scores, labels, group_ids, tau)
    if not has_signal.any():
        return _zero_with_grad(scores)
    margin = torch.logsumexp(neg_logits[has_signal], dim=1) + torch.logsumexp(pos_logits[has_signal], dim=1)
    return _group_sum(F.softplus(margin), has_signal, group_index, denominators) + _zero_with_grad(scores)


def bce_loss(
    scores: torch.Tensor,
    labels: torch.Tensor,
    group_ids: torch.Tensor,
    tau: float,
    denominators: torch.Tensor | None = None,
) -> torch.Tensor:
    """Vanilla BCE with logits s/tau and targets r, averaged over the samples of groups with signal."""
    _, _, has_signal, group_index = _group_logit_matrices(scores, labels, group_ids, tau)
    keep = has_signal[group_index] & (labels >= 0)
    if not keep.any():
        return _zero_with_grad(scores)
    per_sample = F.binary_cross_entropy_with_logits(scores[keep] / tau, labels[keep].to(scores.dtype), reduction="none")
    total = per_sample.mean() if denominators is None else (per_sample / denominators[keep].to(scores.dtype)).sum()
    return total + _zero_with_grad(scores)


for _loss in (real_loss, real_product_loss, bce_loss):
    _loss.__doc__ += _LOSS_ARGS


def signal_rows(labels: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the rows a REAL loss can give a gradient, i.e. the scored members of groups with signal
    (`group_has_signal`). Every loss here has exactly zero gradient on all other rows."""
    has_signal, group_index = group_has_signal(labels, group_ids)
    return has_signal[group_index] & (labels >= 0)


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


def loss_denominator(loss_type: str, labels: torch.Tensor, group_ids: torch.Tensor) -> float:
    """What a loss over exactly these rows divides by: its groups (REAL, product) or its samples in groups
    with signal (BCE); the losses' own default, made explicit so rows can move between passes."""
    if loss_type == "bce":
        return float(max(int(signal_rows(labels, group_ids).sum()), 1))
    return float(torch.unique(group_ids).numel())


LOSSES = {"real": real_loss, "real_product": real_product_loss, "bce": bce_loss}
# The loss types of this module: they couple the members of a group, so every micro-step holds whole groups.
REAL_LOSS_TYPES = tuple(LOSSES)


def reference_kl(
    per_token_logps: torch.Tensor, ref_per_token_logps: torch.Tensor, importance_ratio: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-token KL penalty to the reference model: the k3 estimator exp(r - l) - (r - l) - 1, as GRPO's.

    Args:
        per_token_logps: (B, T) log-probabilities under the current policy (differentiable).
        ref_per_token_logps: (B, T) the same under the reference model.
        importance_ratio: optional (B, T) or (B, 1) ratio pi_theta / pi_old that multiplies the estimate
            (GRPO's `use_bias_correction_kl`), with its gradient.

    Returns:
        (B, T) penalties; the caller masks and aggregates them.
    """
    gap = ref_per_token_logps - per_token_logps
    kl = torch.exp(gap) - gap - 1
    return kl if importance_ratio is None else kl * importance_ratio


@dataclass
class SequenceStats:
    """Per-sequence numbers: what a REAL loss reads of each row, plus the sums its metrics need. The
    trainer exchanges them between processes instead of token-level tensors.

    Travels as a (rows, 8) float64 table, so scores and group ids cross processes exactly; `blank_table`
    gives rows that change nothing, to fill a process's share of the exchange.
    """

    score: torch.Tensor
    label: torch.Tensor
    group: torch.Tensor
    denominator: torch.Tensor  # what the row's group loss (BCE: its own loss) is divided by
    entropy_sum: torch.Tensor
    num_tokens: torch.Tensor
    approx_kl_sum: torch.Tensor  # k3 estimate of KL(pi_old || pi_theta), summed over tokens
    ref_kl_sum: torch.Tensor  # KL to the reference model, summed over tokens (0 without beta)

    def to_table(self) -> torch.Tensor:
        return torch.stack([column.double() for column in astuple(self)], dim=1)

    @classmethod
    def from_table(cls, table: torch.Tensor) -> SequenceStats:
        return cls(*table.unbind(1))

    @classmethod
    def blank_table(cls, rows: int, device) -> torch.Tensor:
        """`rows` table rows that change neither the loss nor any metric (no label, no group, no tokens);
        they fill a process's share of an exchange up to the common size."""
        values = [_BLANK_VALUES.get(f.name, 0.0) for f in fields(cls)]
        return torch.tensor(values, dtype=torch.float64, device=device).expand(rows, -1).clone()


# A blank row is excluded (label -1) from no group (-1); its denominator only needs to be non-zero.
_BLANK_VALUES = {"label": -1.0, "group": -1.0, "denominator": 1.0}
