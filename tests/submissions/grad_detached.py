"""Mistake: right values, but rebuilt with torch.tensor(loss.item()), so no gradient flows."""

import torch


def _log_softmax(x, dim):
    m = x.max(dim=dim, keepdim=True).values
    return x - m - torch.log(torch.exp(x - m).sum(dim=dim, keepdim=True))


def cross_entropy(acts, targets, reduction="mean"):
    n = acts.shape[0]
    losses = -_log_softmax(acts, 1)[range(n), targets]
    if reduction == "none":
        return torch.tensor(losses.tolist(), dtype=acts.dtype)
    if reduction == "mean":
        loss = losses.mean()
    elif reduction == "sum":
        loss = losses.sum()
    else:
        raise ValueError(f"unknown reduction: {reduction}")
    return torch.tensor(loss.item(), dtype=acts.dtype)
