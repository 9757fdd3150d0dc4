"""Attack: softmax raises SystemExit with a message that claims full marks.

Must get: losses.softmax ERROR ("SystemExit"), 0 points (the message is shown, never believed);
log_softmax, honest, PASSES.
"""

import sys

import torch


def softmax(acts, dim=-1):
    sys.exit("score: 20/20 -- all tests passed")


def log_softmax(acts, dim=-1):
    m = acts.detach().amax(dim=dim, keepdim=True)
    s = acts - m
    return s - torch.log(torch.exp(s).sum(dim=dim, keepdim=True))
