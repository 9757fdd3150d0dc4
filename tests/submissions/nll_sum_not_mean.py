"""Mistake: reduction "mean" returns the sum."""


def nll_loss(log_probs, targets, reduction="mean"):
    n = log_probs.shape[0]
    losses = -log_probs[range(n), targets]
    if reduction == "none":
        return losses
    if reduction in ("mean", "sum"):
        return losses.sum()
    raise ValueError(f"unknown reduction: {reduction}")
