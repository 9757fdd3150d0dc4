"""Allowed: a correct cross_entropy that calls the student's own log_softmax and nll_loss."""

import torch


def log_softmax(acts, dim=-1):
    m = acts.detach().amax(dim=dim, keepdim=True)
    shifted = acts - m
    return shifted - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))


def nll_loss(log_probs, targets, reduction="mean"):
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"unknown reduction: {reduction}")
    losses = -log_probs[torch.arange(log_probs.shape[0]), targets]
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses


def cross_entropy(acts, targets, reduction="mean"):
    return nll_loss(log_softmax(acts, dim=1), targets, reduction=reduction)
