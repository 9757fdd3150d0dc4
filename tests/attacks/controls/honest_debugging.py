"""Not an attack: an honest student who debugs with print() inside the functions (tensors, shapes,
f-strings), uses torch.no_grad(), warnings, a cached helper, an exception it catches itself, and
torch.nn.functional ops that are allowed.

Must get: losses.softmax, losses.log_softmax and losses.nll_loss PASSED with full points, no
"untraced" call and no review flag: the tamper checks must not fire on ordinary code.
"""

import functools
import warnings

import torch
import torch.nn.functional as F


@functools.cache
def _label(dim):
    return f"dim={dim}"


def softmax(acts, dim=-1):
    print("softmax input", acts.shape, _label(dim))
    print(acts)
    with torch.no_grad():
        m = acts.amax(dim=dim, keepdim=True)
    e = torch.exp(acts - m)
    out = e / e.sum(dim=dim, keepdim=True)
    print(f"rows sum to {out.sum(dim=dim)}")
    return out


def log_softmax(acts, dim=-1):
    try:
        raise ValueError("just checking")
    except ValueError:
        pass
    if acts.numel() > 10**6:
        warnings.warn("a large input", stacklevel=2)
    m = acts.detach().amax(dim=dim, keepdim=True)
    s = acts - m
    result = s - torch.log(torch.exp(s).sum(dim=dim, keepdim=True))
    print(repr(result[:1]))
    return result


def nll_loss(log_probs, targets, reduction="mean"):
    picked = log_probs.gather(1, targets[:, None])[:, 0]
    losses = -F.pad(picked, (0, 0))
    print("losses", losses.tolist()[:3])
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise ValueError(f"unknown reduction {reduction!r}")
