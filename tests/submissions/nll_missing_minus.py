"""Mistake: forgets the minus sign, so the losses are negative."""


def nll_loss(log_probs, targets, reduction="mean"):
    n = log_probs.shape[0]
    losses = log_probs[range(n), targets]

    if reduction == "none":
        return losses
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    raise ValueError(f"unknown reduction: {reduction}")
