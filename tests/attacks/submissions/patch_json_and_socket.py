"""Attack: call torch.softmax, and hide it below the grader's code: patch json.JSONEncoder.encode
and socket.socket.sendall (the libraries the worker replies through) to rewrite every reply with
an empty op list, each patch removing itself after use.

Must get: losses.softmax FORBIDDEN, 0 points: the worker replies through functions it captured
before the student's code was loaded, and it reports the patched libraries.
"""

import json
import socket

import torch

_encode = json.JSONEncoder.encode
_sendall = socket.socket.sendall


def _encode_without_ops(self, o):
    if isinstance(o, dict) and "ops" in o:
        o = {**o, "ops": []}
    return _encode(self, o)


def _sendall_without_ops(self, data, *args):
    return _sendall(self, data.replace(b'"_softmax"', b'"abs"'), *args)


json.JSONEncoder.encode = _encode_without_ops
socket.socket.sendall = _sendall_without_ops


def softmax(acts, dim=-1):
    return torch.softmax(acts, dim)
