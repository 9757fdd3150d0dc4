"""softmax that calls sys.exit(0); log_softmax is right and must still be graded."""

import sys


def softmax(acts, dim=-1):
    sys.exit(0)


def log_softmax(acts, dim=-1):
    m = acts.max(dim=dim, keepdim=True).values
    return acts - m - (acts - m).exp().sum(dim=dim, keepdim=True).log()
