"""Attack: softmax never returns (a busy loop); log_softmax is honest.

Must get: losses.softmax TIMEOUT ("took longer than"), 0 points; the worker is killed and a fresh
one grades log_softmax, which PASSES (the honest part keeps its points).
"""

import torch


def softmax(acts, dim=-1):
    while True:
        pass


def log_softmax(acts, dim=-1):
    m = acts.detach().amax(dim=dim, keepdim=True)
    s = acts - m
    return s - torch.log(torch.exp(s).sum(dim=dim, keepdim=True))
