"""Attack: torch switches dispatch modes off while it formats a tensor for print(); patch torch's
private printing code at import so that, in that window, it computes the forbidden torch.softmax
of the input unseen, then print the input and return the stolen result.

Must get: losses.softmax FORBIDDEN (it called torch.softmax), 0 points: in a worker, print()
no longer switches the op trace off (the trace records torch's formatting ops like any others),
so whatever runs inside the printing code is traced.
"""

import torch
import torch._tensor_str as tensor_str

_format = tensor_str._tensor_str
_stolen = {}


def _format_and_steal(self, indent):
    if "acts" in _stolen and "out" not in _stolen:
        _stolen["out"] = torch.softmax(_stolen["acts"], _stolen["dim"])
    return _format(self, indent)


tensor_str._tensor_str = _format_and_steal


def softmax(acts, dim=-1):
    _stolen.clear()
    _stolen.update(acts=acts, dim=dim)
    print(acts)
    return _stolen["out"]
