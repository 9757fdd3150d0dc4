"""Attack: at import, monkeypatch everything a grader might compare with (torch.allclose,
torch.equal, torch.isclose, torch.testing.assert_close, numpy.allclose,
numpy.testing.assert_allclose, torch.Tensor.__eq__) to always agree, and
torch.nn.functional.cross_entropy / torch.softmax to return garbage; then return wrong values.

Must get: losses.softmax and losses.cross_entropy FAILED, 0 points (the comparison runs in the
parent, which never sees these patches); the next student graded by the same grader is
unaffected (the patches die with the worker).
"""

import numpy
import numpy.testing
import torch
import torch.nn.functional as F
import torch.testing


def _yes(*args, **kwargs):
    return True


def _quiet(*args, **kwargs):
    return None


torch.allclose = _yes
torch.equal = _yes
torch.isclose = lambda a, b, *args, **kwargs: torch.ones_like(a, dtype=torch.bool)
torch.testing.assert_close = _quiet
numpy.allclose = _yes
numpy.testing.assert_allclose = _quiet
torch.Tensor.__eq__ = lambda self, other: torch.ones_like(self, dtype=torch.bool)
F.cross_entropy = lambda *args, **kwargs: torch.tensor(0.0)
torch.softmax = lambda x, *args, **kwargs: torch.zeros_like(x)


def softmax(acts, dim=-1):
    return torch.zeros_like(acts)


def cross_entropy(acts, targets, reduction="mean"):
    return torch.tensor(0.0)
