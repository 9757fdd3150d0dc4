"""Attack: softmax calls os._exit(0) (no exception, no cleanup, exit code 0).

Must get: losses.softmax ERROR ("exited with code 0"), 0 points; log_softmax, honest, PASSES in a
fresh worker.
"""

import os

import torch


def softmax(acts, dim=-1):
    os._exit(0)


def log_softmax(acts, dim=-1):
    m = acts.detach().amax(dim=dim, keepdim=True)
    s = acts - m
    return s - torch.log(torch.exp(s).sum(dim=dim, keepdim=True))
