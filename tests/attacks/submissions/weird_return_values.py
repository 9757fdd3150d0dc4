"""Attack: return values that are awkward to encode: a 10,000-digit int (str() refuses it), a
self-containing list, a tensor with the conjugate bit set, a sparse tensor, a meta tensor, and a
string of 10 MB.

Must get: each exercise FAILED ("returned a ...") or ERROR with a clear message, 0 points; the
worker's codec never crashes.
"""

import torch


def is_cat(fname):
    return 10**10_000


def breed_from_filename(fname):
    return "x" * 10_000_000


def softmax(acts, dim=-1):
    loop = []
    loop.append(loop)
    return loop


def binary_softmax(acts):
    return torch.ones(acts.shape[0], dtype=torch.complex64).conj()


def log_softmax(acts, dim=-1):
    return acts.to_sparse()


def nll_loss(log_probs, targets, reduction="mean"):
    return torch.empty(3, device="meta")
