"""Attack: call the forbidden ops through spellings a text or AST scan would miss: getattr with
a built name, the module __dict__, an nn.Module, torch._C._nn, Tensor methods via operator
tricks, and an import by string.

Must get: softmax, log_softmax, nll_loss and cross_entropy FORBIDDEN, 0 points: the op trace sees
the aten ops whatever the spelling.
"""

import importlib
import operator

import torch

_F = importlib.import_module("torch.nn." + "functional")


def softmax(acts, dim=-1):
    fn = getattr(torch, "soft" + "max")
    return fn(acts, dim)


def log_softmax(acts, dim=-1):
    return operator.methodcaller("log_" + "softmax", dim)(acts)


def nll_loss(log_probs, targets, reduction="mean"):
    return vars(_F)["nll" + "_loss"](log_probs, targets, reduction=reduction)


def cross_entropy(acts, targets, reduction="mean"):
    return torch.nn.CrossEntropyLoss(reduction=reduction)(acts, targets)
