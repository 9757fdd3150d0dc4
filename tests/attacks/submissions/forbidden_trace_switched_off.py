"""Attack: switch the op trace off for just the forbidden call, using torch's own private
switches (they restore it afterwards, so the trace looks intact at the end):
_disable_current_modes() for softmax, popping the dispatch-mode stack for log_softmax, and
excluding the Python dispatch key for nll_loss.

Must get: the three FORBIDDEN ("switched off the op trace"), 0 points.
"""

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import _disable_current_modes


def softmax(acts, dim=-1):
    with _disable_current_modes():
        return torch.softmax(acts, dim)


def log_softmax(acts, dim=-1):
    mode = torch._C._pop_torch_dispatch_stack(None)
    try:
        return torch.log_softmax(acts, dim)
    finally:
        torch._C._push_on_torch_dispatch_stack(mode)


def nll_loss(log_probs, targets, reduction="mean"):
    keys = torch._C.DispatchKeySet(torch._C.DispatchKey.Python)
    with torch._C._ExcludeDispatchKeyGuard(keys):
        return F.nll_loss(log_probs, targets, reduction=reduction)
