"""Forbidden: log_softmax uses torch.logsumexp."""

import torch


def log_softmax(acts, dim=-1):
    return acts - torch.logsumexp(acts, dim=dim, keepdim=True)
