"""softmax that crashes the interpreter with a segmentation fault (reads address 8)."""

import ctypes


def softmax(acts, dim=-1):
    return ctypes.cast(8, ctypes.POINTER(ctypes.c_int64))[0]
