"""softmax that crashes the interpreter with a segmentation fault."""

import ctypes


def softmax(acts, dim=-1):
    return ctypes.string_at(0)
