"""Mistake: subtracts sum(exp(x - m)) instead of its log."""

import torch


def log_softmax(acts, dim=-1):
    m = acts.max(dim=dim, keepdim=True).values
    return acts - m - torch.exp(acts - m).sum(dim, keepdim=True)
