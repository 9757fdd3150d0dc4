"""Mistake: forgets the minus sign, so the losses are negative."""

import torch


def _log_softmax(x, dim):
    m = x.max(dim=dim, keepdim=True).values
    return x - m - torch.log(torch.exp(x - m).sum(dim=dim, keepdim=True))


def cross_entropy(acts, targets, reduction="mean"):
    n = acts.shape[0]
    losses = _log_softmax(acts, 1)[range(n), targets]

    if reduction == "none":
        return losses
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    raise ValueError(f"unknown reduction: {reduction}")
