"""Forbidden: cross_entropy calls F.cross_entropy."""

import torch.nn.functional as F


def cross_entropy(acts, targets, reduction="mean"):
    return F.cross_entropy(acts, targets, reduction=reduction)
