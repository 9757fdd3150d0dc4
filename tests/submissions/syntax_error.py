"""A softmax with a syntax error: an unmatched ")" on line 8."""

import torch


def softmax(acts, dim=-1):
    m = acts.amax(dim=dim, keepdim=True)
    e = torch.exp(acts - m))
    return e / e.sum(dim=dim, keepdim=True)
