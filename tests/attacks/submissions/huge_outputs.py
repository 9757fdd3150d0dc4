"""Attack: answer with 400 MB per call (softmax) and a list of 300,000 tensors (log_softmax), so
that the grader, which keeps every outcome until it has judged it, runs out of memory.

Must get: losses.softmax and losses.log_softmax FAILED ("returned a ..." too large), 0 points,
fast: the worker refuses to send results over 64 MB or 200,000 items, and the parent refuses
larger replies anyway; the grader's memory stays bounded and the batch completes.
"""

import torch


def softmax(acts, dim=-1):
    return torch.zeros(1).expand(100_000_000)  # 400 MB to send, 4 bytes to make


def log_softmax(acts, dim=-1):
    return [torch.zeros(10)] * 300_000
