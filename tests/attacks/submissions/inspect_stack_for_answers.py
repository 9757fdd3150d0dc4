"""Attack: detect the grader with inspect.stack(), then search every frame's locals and every
object the garbage collector knows for a tensor that could be the expected answer (same shape as
the input, rows summing to 1, not the input itself), and return it.

Must get: losses.softmax ERROR ("gc.get_objects is not allowed in graded code"), 0 points: the
worker's audit hook refuses the garbage collector's object lists; and even the frames it can walk
hold no expected output, only the inputs.
"""

import gc
import inspect

import torch


def _candidates(acts, dim):
    for info in inspect.stack():
        for value in list(info.frame.f_locals.values()):
            yield value
    yield from gc.get_objects()


def softmax(acts, dim=-1):
    graded = any("grader" in (info.filename or "") for info in inspect.stack())
    if graded:
        for obj in _candidates(acts, dim):
            if type(obj) is torch.Tensor and obj is not acts and obj.shape == acts.shape:
                if obj.dtype == acts.dtype and obj.min() >= 0:
                    sums = obj.sum(dim=dim)
                    if torch.all((sums - 1).abs() < 1e-3):
                        return obj.clone()
    return acts
