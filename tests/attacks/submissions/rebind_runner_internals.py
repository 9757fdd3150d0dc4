"""Attack: call torch.softmax and hide it by rebinding the worker's internals at import: the
helper that talks to the op record (to steal the master key it is given), the trace class, the
defaults and the code of the function the trace's __torch_dispatch__ comes from.

Must get: losses.softmax FORBIDDEN, 0 points: the worker's loop runs from a private copy of its
module (rebinding grader.runner's attributes changes nothing it calls), and the audit hook refuses
to replace the code or defaults of the grader's functions.
"""

import sys

import torch

runner = sys.modules.get("grader.runner")
STOLEN = []

if runner is not None:

    def _steal(admin, hits, *msg):
        STOLEN.append(admin)
        return admin(*msg)

    class _Quiet(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    runner._tell = _steal
    runner.OpTrace = _Quiet
    runner.local_admin = lambda: None
    for attempt in (
        lambda: setattr(runner._dispatch_of, "__defaults__", (lambda d, m: d, None)),
        lambda: setattr(runner._dispatch_of, "__code__", (lambda m, b=None, d=None: None).__code__),
    ):
        try:
            attempt()
        except ValueError:
            pass


def softmax(acts, dim=-1):
    if STOLEN:  # never happens: had the key been stolen, wipe the record after the call
        return torch.softmax(acts, dim)
    return torch.softmax(acts, dim)
