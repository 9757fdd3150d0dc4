"""Attack: compute softmax in place in the caller's tensor and return it (so "the input" and "the
output" agree), and scribble over every tensor argument of nll_loss.

Must get: losses.softmax FAILED ("changed its input in place"), losses.nll_loss FAILED, 0 points;
the parent's cases and expected outputs are untouched (the next student still passes).
"""

import torch


def softmax(acts, dim=-1):
    with torch.no_grad():
        acts.sub_(acts.amax(dim=dim, keepdim=True)).exp_()
        acts.div_(acts.sum(dim=dim, keepdim=True))
    return acts


def nll_loss(log_probs, targets, reduction="mean"):
    with torch.no_grad():
        log_probs.fill_(0.0)
        targets.zero_()
    return log_probs.sum()
