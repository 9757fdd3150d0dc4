"""Attack: the right numbers in the wrong container: softmax answers in float64, log_softmax with
an extra leading dimension, binary_softmax as a (N, 1) column.

Must get: the three FAILED with the difference named ("dtype" / "shape"), 0 points.
"""

import torch


def softmax(acts, dim=-1):
    m = acts.detach().amax(dim=dim, keepdim=True)
    e = torch.exp(acts - m)
    out = e / e.sum(dim=dim, keepdim=True)
    return out.double() if out.dtype != torch.float64 else out.float()


def log_softmax(acts, dim=-1):
    m = acts.detach().amax(dim=dim, keepdim=True)
    s = acts - m
    return (s - torch.log(torch.exp(s).sum(dim=dim, keepdim=True))).unsqueeze(0)


def binary_softmax(acts):
    return torch.sigmoid(acts[:, 0] - acts[:, 1])[:, None]
