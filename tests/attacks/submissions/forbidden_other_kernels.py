"""Attack: compute softmax and log_softmax through other torch kernels that do the same work:
scaled dot-product attention with identity keys and values (its CPU kernel computes a softmax),
a sparse tensor's softmax, and a sparse log_softmax.

Must get: softmax, binary_softmax and log_softmax FORBIDDEN, 0 points: those kernels are on the
exercises' forbidden lists, seen by the op trace and counted by the kernel probes.
"""

import torch
import torch.nn.functional as F


def softmax(acts, dim=-1):
    moved = acts.movedim(dim, -1)
    n = moved.shape[-1]
    eye = torch.eye(n, dtype=acts.dtype).expand(1, 1, n, n)
    rows = moved.reshape(1, 1, -1, n)
    out = F.scaled_dot_product_attention(rows, eye, eye, scale=1.0)
    return out.reshape(moved.shape).movedim(-1, dim)


def binary_softmax(acts):
    diff = acts[:, :1] - acts[:, 1:]
    pair = torch.cat([diff, torch.zeros_like(diff)], dim=1)
    return torch.sparse.softmax(pair.to_sparse(), 1).to_dense()[:, 0]


def log_softmax(acts, dim=-1):
    return torch.sparse.log_softmax(acts.to_sparse(), dim).to_dense()
