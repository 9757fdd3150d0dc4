"""Attack: softmax dereferences a NULL pointer through ctypes (the interpreter dies with SIGSEGV).

Must get: losses.softmax ERROR ("SIGSEGV"), 0 points; the worker is replaced and log_softmax,
which is honest, PASSES.
"""

import ctypes

import torch


def softmax(acts, dim=-1):
    return ctypes.cast(8, ctypes.POINTER(ctypes.c_int64))[0]  # read address 8: SIGSEGV


def log_softmax(acts, dim=-1):
    m = acts.detach().amax(dim=dim, keepdim=True)
    s = acts - m
    return s - torch.log(torch.exp(s).sum(dim=dim, keepdim=True))
