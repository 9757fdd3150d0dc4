"""Attack: find the op record (a generator the worker started before loading any student code)
and talk to it: send it forged commands to reset the record, then close it, and call
torch.softmax.

Must get: losses.softmax FORBIDDEN ("op trace was stopped"), 0 points: commands without the
master key are ignored, and a closed record makes every later call untraced.
"""

import sys

import torch

runner = sys.modules.get("grader.runner")


def softmax(acts, dim=-1):
    if runner is not None:
        vault = runner._VAULT
        for forged in (("finish",), (None, "finish"), (object(), "arm", None), ("release",)):
            try:
                vault.send(forged)
            except Exception:
                pass
        try:
            vault.close()
        except Exception:
            pass
    try:
        return torch.softmax(acts, dim)
    except Exception:
        m = acts.amax(dim=dim, keepdim=True)
        e = (acts - m).exp()
        return e / e.sum(dim=dim, keepdim=True)
