"""Imports a module that does not exist, then defines a correct softmax."""

import imgclass_kit_no_such_module  # noqa: F401
import torch


def softmax(acts, dim=-1):
    m = acts.amax(dim=dim, keepdim=True)
    e = torch.exp(acts - m)
    return e / e.sum(dim=dim, keepdim=True)
