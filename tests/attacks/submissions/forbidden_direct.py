"""Attack: call the op the exercise teaches, directly: torch.softmax, F.log_softmax, F.nll_loss,
F.cross_entropy.

Must get: all four FORBIDDEN ("implement it yourself"), 0 points, even though the values are right.
"""

import torch
import torch.nn.functional as F


def softmax(acts, dim=-1):
    return torch.softmax(acts, dim)


def log_softmax(acts, dim=-1):
    return F.log_softmax(acts, dim=dim)


def nll_loss(log_probs, targets, reduction="mean"):
    return F.nll_loss(log_probs, targets, reduction=reduction)


def cross_entropy(acts, targets, reduction="mean"):
    return F.cross_entropy(acts, targets, reduction=reduction)
