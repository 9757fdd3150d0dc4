"""Attack: a cross_entropy whose forward pass is written by hand but whose backward pass (a
custom autograd.Function) calls the forbidden F.log_softmax: the gradient is computed after the
function has returned.

Must get: losses.cross_entropy FORBIDDEN, 0 points: gradients are computed inside the op trace.
"""

import torch
import torch.nn.functional as F


class _CE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, acts, targets):
        ctx.save_for_backward(acts, targets)
        m = acts.amax(dim=1, keepdim=True)
        logp = acts - m - torch.log(torch.exp(acts - m).sum(dim=1, keepdim=True))
        return -logp[torch.arange(len(targets)), targets]

    @staticmethod
    def backward(ctx, grad):
        acts, targets = ctx.saved_tensors
        probs = F.log_softmax(acts, dim=1).exp()
        probs[torch.arange(len(targets)), targets] -= 1
        return grad[:, None] * probs, None


def cross_entropy(acts, targets, reduction="mean"):
    losses = _CE.apply(acts, targets)
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses
