"""Attack: look everywhere student code can reach (torch._C, every module's globals, the
wrappers' own contents) for torch's original _pop_torch_dispatch_stack, pop the op trace with it,
call torch.softmax unseen, and push the trace back.

Must get: losses.softmax FORBIDDEN ("switched off the op trace"), 0 points: the original is kept
only inside the op record, and every reachable name for it is the wrapper that tells the record.
"""

import sys

import torch

_builtin = type(len)


def _original_pop():
    for module in list(sys.modules.values()):
        for value in list(getattr(module, "__dict__", {}).values()):
            if type(value) is _builtin and getattr(value, "__name__", "") == "_pop_torch_dispatch_stack":
                return value
    wrapper = torch._C._pop_torch_dispatch_stack
    for value in (wrapper, *(wrapper if isinstance(wrapper, tuple) else ())):
        if type(value) is _builtin and getattr(value, "__name__", "") == "_pop_torch_dispatch_stack":
            return value
    return wrapper  # found nothing better: the wrapper


def softmax(acts, dim=-1):
    pop = _original_pop()
    mode = pop(None)
    try:
        out = torch.softmax(acts, dim)
    finally:
        torch._C._push_on_torch_dispatch_stack(mode)
    return out
