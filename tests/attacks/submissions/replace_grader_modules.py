"""Attack: replace the grader's judging modules in sys.modules (grader.engine, grader.explain,
grader.model, grader.spec, grader.api) with fakes that pass everything, and patch
grader.outcome; then return wrong values.

Must get: losses.softmax FAILED, 0 points: the worker never judges, and the parent never imports
anything from the worker. The next student is unaffected.
"""

import sys
import types

import torch


class _PassEverything(types.ModuleType):
    def __getattr__(self, name):
        return lambda *args, **kwargs: True


for name in ("grader.engine", "grader.explain", "grader.model", "grader.spec", "grader.api", "grader.judge"):
    sys.modules[name] = _PassEverything(name)

if "grader.outcome" in sys.modules:
    sys.modules["grader.outcome"].Returned = lambda *args, **kwargs: "PASSED"


def softmax(acts, dim=-1):
    return torch.full_like(acts, 0.25)
