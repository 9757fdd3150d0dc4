"""Forbidden: softmax calls F.softmax."""

import torch.nn.functional as F


def softmax(acts, dim=-1):
    return F.softmax(acts, dim=dim)
