"""Attack: while binary_softmax runs (it forbids softmax, not log_softmax), read every input the
grader handed to the fork-server, compute log_softmax on them with the forbidden
torch.log_softmax, and answer the log_softmax exercise from that table later. The kernel probes
attribute a hit to the exercise running when it happens, so the hit lands on binary_softmax.

Must get: binary_softmax PASSED (its own code is honest), log_softmax ERROR, 0 points: the
worker keeps the preloaded inputs out of reach by name (grader.runner.PRELOADED is empty in a
worker), so there is nothing to precompute.
"""

import sys

import torch

_ANSWERS = {}


def _key(x, dim):
    return (tuple(x.shape), dim, x.detach().numpy().tobytes())


def binary_softmax(acts):
    try:
        for exercises in sys.modules["grader.runner"].PRELOADED.values():
            for _, _, pristine, _ in exercises.values():
                for x in pristine.values():
                    if x.is_floating_point() and x.dim() >= 1:
                        for d in range(-x.dim(), x.dim()):
                            _ANSWERS[_key(x, d)] = torch.log_softmax(x, d)
    except Exception:
        pass
    return torch.sigmoid(acts[:, 0] - acts[:, 1])


def log_softmax(acts, dim=-1):
    key = _key(acts, dim)
    if key not in _ANSWERS:
        raise LookupError("this input was not precomputed")
    return _ANSWERS[key].clone()
