"""Mistake: log of a (max-subtracting) softmax: -inf where a probability underflows to 0."""

import torch


def log_softmax(acts, dim=-1):
    m = acts.max(dim=dim, keepdim=True).values
    e = torch.exp(acts - m)
    return torch.log(e / e.sum(dim=dim, keepdim=True))
