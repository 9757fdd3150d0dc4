"""Learning rates (fastbook chapter 5, "The Learning Rate Finder" and "Discriminative Learning Rates").

`learn.lr_find()` trains for up to 100 mini-batches while the learning rate grows exponentially
from 1e-7 to 10, records the (smoothed) loss after each one, and stops when the loss shoots up
to more than 4x the best loss seen. It then suggests learning rates from the curve. The book
printed two of them, `lr_min, lr_steep = learn.lr_find()` (in current fastai:
`learn.lr_find(suggest_funcs=(minimum, steep))`).

Later in the chapter the model is fine-tuned with DISCRIMINATIVE learning rates: the early layers
(which already know general features from pretraining) get a smaller learning rate than the
later ones, written as a Python `slice`: `learn.fit_one_cycle(12, lr_max=slice(1e-6, 1e-4))`.

Replace each `raise NotImplementedError` with your code, then grade one function with
`grade --only learning_rates.lr_suggestions` (or `grade` for all of them).
"""

import math

import torch


def lr_suggestions(lrs: torch.Tensor, losses: torch.Tensor) -> tuple[float, float]:
    """fastai's two classic suggestions from a learning-rate finder curve: (lr_min, lr_steep).

    lrs:    float64 tensor (n,), n >= 2: the learning rates, growing geometrically (each one a
            constant factor times the previous one).
    losses: float64 tensor (n,): the loss recorded at each learning rate. The curve is what
            `lr_find` hands its suggestion functions: it already dropped the first 10% of the run
            and the last 5 points, so it ends where the loss is shooting up (diverging).
    Returns a tuple of two Python floats `(lr_min, lr_steep)`:

    - lr_min ("minimum"): the learning rate at the LOWEST loss, divided by 10. At the minimum the
      loss is about to blow up, so the book's rule of thumb is to go one order of magnitude lower.
      If the lowest loss occurs more than once, take the first (`torch.argmin` does).
    - lr_steep ("steep"): the learning rate where the loss falls fastest against the LOGARITHM of
      the learning rate (the plot's x axis is logarithmic). For each pair of neighbours i, i+1:

          slope_i = (losses[i+1] - losses[i]) / (log(lrs[i+1]) - log(lrs[i]))

      The steepest descent is the most negative slope; return lrs[i] for that i (the LEFT end of
      the steepest segment; the first one on a tie). Natural log or log10 give the same answer.

        lrs    = torch.tensor([1e-4, 1e-3, 1e-2, 1e-1, 1.0], dtype=torch.float64)
        losses = torch.tensor([2.0, 1.5, 0.8, 0.6, 3.0], dtype=torch.float64)
        lr_suggestions(lrs, losses) -> (0.01, 0.001)

    Lowest loss 0.6 at lr 0.1, so lr_min = 0.1 / 10 = 0.01. Per decade the loss changes by
    -0.5, -0.7, -0.2, +2.4: the steepest fall is between 1e-3 and 1e-2, so lr_steep = 0.001.
    (Against lr itself the first step, -0.5 over a tiny 9e-4, would look steepest: that is why
    the slope is taken against log(lr).)

    Return Python floats (`float(...)` or `.item()`), not tensors. The book's run printed
    "Minimum/10: 1.00e-02, steepest point: 5.25e-03" and chose 3e-3.
    """
    raise NotImplementedError


def lrs_for_groups(lr: float | slice, n_groups: int) -> list[float]:
    """The learning rate of each parameter group, from a float or a slice, as fastai spreads them.

    lr:       a float, or a slice `slice(lo, hi)` or `slice(None, hi)` (what `slice(hi)` gives).
    n_groups: the number of parameter groups, >= 1 (fastai splits a pretrained resnet into 3:
              two groups of the body, then the new head; group 0 is closest to the input).
    Returns a list of `n_groups` Python floats, group 0 first:

    - a float: the same learning rate for every group.
          lrs_for_groups(1e-3, 3) -> [0.001, 0.001, 0.001]
    - slice(None, hi): hi for the LAST group and hi / 10 for all the others.
          lrs_for_groups(slice(1e-3), 3) -> [0.0001, 0.0001, 0.001]
      (`fine_tune` trains its first, frozen, epoch with `slice(base_lr)`.)
    - slice(lo, hi): from lo for the first group to hi for the last, spread MULTIPLICATIVELY
      evenly (a geometric sequence: every group's rate is the previous one times the same factor
      (hi / lo) ** (1 / (n_groups - 1))):
          lrs_for_groups(slice(1e-5, 1e-3), 3) -> [1e-05, 0.0001, 0.001]     # x10 each
          lrs_for_groups(slice(1e-6, 1e-4), 4) -> [1e-06, 4.64e-06, 2.15e-05, 0.0001]
      NOT evenly spaced: slice(1e-5, 1e-3) is not [1e-5, 5.05e-4, 1e-3]. Learning rates live on a
      log scale, like the finder's plot. With one group there is nothing to spread: the answer
      is [hi] (fastcore's `even_mults` does this).
    """
    raise NotImplementedError
