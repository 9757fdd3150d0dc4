"""Mistake: lr_min is the learning rate at the lowest loss itself, not a tenth of it."""

import torch


def lr_suggestions(lrs, losses):
    lr_min = lrs[torch.argmin(losses)].item()
    slopes = (losses[1:] - losses[:-1]) / (lrs[1:].log() - lrs[:-1].log())
    return lr_min, lrs[torch.argmin(slopes)].item()
