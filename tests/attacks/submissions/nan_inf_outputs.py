"""Attack: return NaN everywhere (softmax) and +inf everywhere (log_softmax), the values a
careless comparison (NaN != NaN handled wrongly, inf - inf) might let through.

Must get: losses.softmax and losses.log_softmax FAILED, 0 points: NaN never matches a finite
expected value.
"""

import torch


def softmax(acts, dim=-1):
    return torch.full_like(acts, float("nan"))


def log_softmax(acts, dim=-1):
    return torch.full_like(acts, float("inf"))
