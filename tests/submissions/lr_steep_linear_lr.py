"""Mistake: the slope is taken against the learning rate itself, not its logarithm."""

import torch


def lr_suggestions(lrs, losses):
    lr_min = lrs[torch.argmin(losses)].item() / 10
    slopes = (losses[1:] - losses[:-1]) / (lrs[1:] - lrs[:-1])
    return lr_min, lrs[torch.argmin(slopes)].item()
