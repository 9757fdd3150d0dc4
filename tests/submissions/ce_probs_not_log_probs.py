"""Mistake (the lesson's slip): -softmax[i, target] instead of -log_softmax[i, target]."""

import torch


def _softmax(x, dim):
    m = x.max(dim=dim, keepdim=True).values
    e = torch.exp(x - m)
    return e / e.sum(dim=dim, keepdim=True)


def cross_entropy(acts, targets, reduction="mean"):
    n = acts.shape[0]
    losses = -_softmax(acts, 1)[range(n), targets]
    if reduction == "none":
        return losses
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    raise ValueError(f"unknown reduction: {reduction}")
