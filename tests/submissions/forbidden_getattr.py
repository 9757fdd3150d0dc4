"""Forbidden: softmax reaches torch.softmax through getattr with a built-up name."""

import torch


def softmax(acts, dim=-1):
    return getattr(torch, "soft" + "max")(acts, dim)
