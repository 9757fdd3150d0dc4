"""A student's losses: softmax is a sigmoid, log_softmax not started, nll_loss has a typo on
reduction='sum', cross_entropy feeds probabilities to the NLL (the lesson's slip)."""

import torch


def softmax(acts, dim=-1):
    if acts.numel() > 100_000:
        print("softmax: a big batch", tuple(acts.shape), "<- does this take long?")
    return torch.sigmoid(acts)


def binary_softmax(acts):
    return torch.sigmoid(acts[:, 0] - acts[:, 1])


def log_softmax(acts, dim=-1):
    raise NotImplementedError


def nll_loss(log_probs, targets, reduction="mean"):
    n = log_probs.shape[0]
    losses = -log_probs[range(n), targets]
    if reduction == "none":
        return losses
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.summ()
    raise ValueError(f"unknown reduction: {reduction}")


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
