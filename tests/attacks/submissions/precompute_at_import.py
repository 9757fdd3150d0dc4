"""Attack: run the forbidden op at import time, outside any exercise's calls, on every input the
grader may have handed to the fork-server already, and answer later calls from that table (the
op trace only watches calls).

Must get: softmax FORBIDDEN, 0 points: the kernel probes count what the module ran while it was
imported against every exercise of the module that forbids it.
"""

import sys

import torch

_ANSWERS = {}


def _remember(x, dim):
    _ANSWERS[(x.shape, dim, x.numpy().tobytes())] = torch.softmax(x, dim)


try:
    for exercises in sys.modules["grader.runner"].PRELOADED.values():
        for _, _, pristine, _ in exercises.values():
            for x in pristine.values():
                if x.is_floating_point() and x.dim() >= 1:
                    for d in range(-x.dim(), x.dim()):
                        _remember(x, d)
except Exception:
    pass
_remember(torch.tensor([[1.0, 2.0]]), -1)


def softmax(acts, dim=-1):
    key = (acts.shape, dim, acts.detach().numpy().tobytes())
    if key not in _ANSWERS:
        raise LookupError("this input was not precomputed")
    return _ANSWERS[key].clone()
