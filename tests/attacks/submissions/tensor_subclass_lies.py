"""Attack: return a torch.Tensor subclass whose __torch_function__ answers every comparison
(==, allclose, equal, isclose, isnan, ...) with "yes".

Must get: losses.softmax FAILED ("torch.Tensor subclass"), 0 points: the codec accepts only the
exact type torch.Tensor, so the lie never reaches the parent's comparison.
"""

import torch

LIES = {"__eq__", "eq", "allclose", "equal", "isclose", "__ne__", "isnan", "isinf", "isfinite", "all", "any"}


class Liar(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in LIES:
            return True
        return super().__torch_function__(func, types, args, kwargs or {})


def softmax(acts, dim=-1):
    return torch.zeros_like(acts).as_subclass(Liar)
