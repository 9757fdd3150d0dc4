"""Attack: call torch.softmax, and hide it by patching the worker's own code at import: the op
trace's __torch_dispatch__ forgets every op, and grader.wire.send_frame / pack_frame strip the
"ops" list from every reply.

Must get: losses.softmax FORBIDDEN, 0 points: the runner checks, before it replies, that its
trace is still alive and its code unpatched, and reports the tampering.
"""

import sys

import torch

runner = sys.modules.get("grader.runner")
wire = sys.modules.get("grader.wire")

if runner is not None:

    def _forget(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))

    runner.OpTrace.__torch_dispatch__ = _forget

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
    return torch.softmax(acts, dim)
