"""Attack: lift the recursion limit, then recurse through C (getattr -> __getattr__ -> getattr
...), which uses the C stack on every level, until the stack overflows.

Must get: losses.softmax ERROR (the worker dies with SIGSEGV, or Python raises RecursionError),
0 points; a fresh worker grades log_softmax, which is honest: PASSED.
"""

import sys

import torch


class Bottomless:
    def __getattr__(self, name):
        return getattr(self, name + "x")


def softmax(acts, dim=-1):
    sys.setrecursionlimit(10**8)
    return Bottomless().deeper


def log_softmax(acts, dim=-1):
    m = acts.detach().amax(dim=dim, keepdim=True)
    s = acts - m
    return s - torch.log(torch.exp(s).sum(dim=dim, keepdim=True))
