"""Reference solutions: softmax, log_softmax, nll_loss and cross-entropy from scratch.

Only elementwise ops, reductions and indexing are used, so autograd works through every function.
Grade one function with ``grade --only losses.softmax``.
"""

import torch


def softmax(acts: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """exp(x - m) / sum(exp(x - m)) along ``dim``, with m the max along ``dim``."""
    # Subtracting a constant along dim leaves softmax unchanged; the max makes every exponent <= 0,
    # so exp never overflows. m is detached: the result does not depend on it.
    m = acts.detach().amax(dim=dim, keepdim=True)
    e = torch.exp(acts - m)
    return e / e.sum(dim=dim, keepdim=True)


def binary_softmax(acts: torch.Tensor) -> torch.Tensor:
    """P(class 0) for two-class activations of shape (N, 2): sigmoid(acts[:, 0] - acts[:, 1])."""
    return torch.sigmoid(acts[:, 0] - acts[:, 1])


def log_softmax(acts: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """x - m - log(sum(exp(x - m))) along ``dim`` (the LogSumExp trick)."""
    m = acts.detach().amax(dim=dim, keepdim=True)
    shifted = acts - m
    return shifted - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))


def nll_loss(log_probs: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """-log_probs[i, targets[i]] per item, then reduced: "none", "mean" or "sum"."""
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    rows = torch.arange(log_probs.shape[0], device=log_probs.device)
    losses = -log_probs[rows, targets]
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses


def cross_entropy(acts: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """nll_loss(log_softmax(acts, dim=1), targets, reduction)."""
    return nll_loss(log_softmax(acts, dim=1), targets, reduction=reduction)
