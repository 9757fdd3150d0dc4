"""Attack: return an object that agrees with everything: __eq__ is always True, __array__ and
__float__ return whatever is asked for, it has the right .shape and .dtype, and it claims to be
close to anything.

Must get: losses.softmax FAILED ("returned a"), 0 points: only an exact torch.Tensor is compared.
"""

import torch


class Agreeable:
    shape = property(lambda self: torch.Size([6, 2]))
    dtype = torch.float32

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = object.__hash__

    def __array__(self, *args, **kwargs):
        import numpy as np

        return np.ones((6, 2), dtype=np.float32) / 2

    def __float__(self):
        return 0.5

    def __bool__(self):
        return True

    def __len__(self):
        return 6

    def allclose(self, *args, **kwargs):
        return True

    def __getattr__(self, name):
        return lambda *args, **kwargs: self


def softmax(acts, dim=-1):
    return Agreeable()
