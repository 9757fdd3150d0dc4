"""Reference solutions: learning-rate finder suggestions and discriminative learning rates.

Grade one function with ``grade --only learning_rates.lr_suggestions``.
"""

import math

import torch


def lr_suggestions(lrs: torch.Tensor, losses: torch.Tensor) -> tuple[float, float]:
    """(lr at the lowest loss / 10, lr where the loss falls fastest against log lr)."""
    lr_min = lrs[torch.argmin(losses)].item() / 10
    log_lrs = torch.log(lrs)
    slopes = (losses[1:] - losses[:-1]) / (log_lrs[1:] - log_lrs[:-1])
    lr_steep = lrs[torch.argmin(slopes)].item()  # the left end of the steepest segment
    return lr_min, lr_steep


def lrs_for_groups(lr: float | slice, n_groups: int) -> list[float]:
    """One learning rate per parameter group, as fastai spreads a float or a slice."""
    if not isinstance(lr, slice):
        return [float(lr)] * n_groups
    hi = float(lr.stop)
    if lr.start is None:
        return [hi / 10] * (n_groups - 1) + [hi]
    if n_groups == 1:
        return [hi]
    lo = float(lr.start)
    # Evenly spaced on a log scale: lo * (hi/lo)^t for t = 0, 1/(n-1), ..., 1.
    log_lo, log_hi = math.log(lo), math.log(hi)
    return [math.exp(log_lo + (log_hi - log_lo) * k / (n_groups - 1)) for k in range(n_groups)]
