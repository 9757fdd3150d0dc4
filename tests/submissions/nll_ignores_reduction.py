"""Mistake: always returns the mean, whatever reduction asks for."""


def nll_loss(log_probs, targets, reduction="mean"):
    n = log_probs.shape[0]
    return -log_probs[range(n), targets].mean()
