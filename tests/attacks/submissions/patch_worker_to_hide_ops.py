"""Attack: call torch.softmax, and hide it by patching the worker's own code: the op trace's
__torch_dispatch__ is replaced on its class at import (and, if the class refuses, shadowed on the
trace object itself during the call), and grader.wire.send_frame / pack_frame strip the "ops" list
from every reply.

Must get: losses.softmax FORBIDDEN, 0 points: the trace class is immutable, its
__torch_dispatch__ is a property (an instance attribute cannot shadow it), and the replies go
through functions bound before any student code was loaded.
"""

import sys
import types

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

runner = sys.modules.get("grader.runner")
wire = sys.modules.get("grader.wire")


def _forget(self, func, types, args=(), kwargs=None):
    return func(*args, **(kwargs or {}))


if runner is not None:
    try:
        runner.OpTrace.__torch_dispatch__ = _forget
    except TypeError:  # immutable: try the instance during the call
        pass

if wire is not None:
    _pack = wire.pack_frame

    def _pack_without_ops(header, blobs=()):
        header = dict(header)
        header["ops"] = []
        return _pack(header, blobs)

    wire.pack_frame = _pack_without_ops
    _send = wire.send_frame

    def _send_without_ops(sock, header, blobs=()):
        header = dict(header)
        header["ops"] = []
        return _send(sock, header, blobs)

    wire.send_frame = _send_without_ops


def softmax(acts, dim=-1):
    mode = _get_current_dispatch_mode()
    if mode is not None:
        vars(mode)["__torch_dispatch__"] = types.MethodType(_forget, mode)
    return torch.softmax(acts, dim)
