"""Mistake: log_probs[:, targets] picks an N x N block instead of one entry per row."""


def nll_loss(log_probs, targets, reduction="mean"):
    losses = -log_probs[:, targets]

    if reduction == "none":
        return losses
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    raise ValueError(f"unknown reduction: {reduction}")
