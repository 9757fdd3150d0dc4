"""Attack: torch switches dispatch modes off while it formats a tensor for print(); patch torch's
private printing code at import so that, in that window, it computes the forbidden torch.softmax
of the input unseen, then print the input and return the stolen result.

Must get: losses.softmax FORBIDDEN ("printing code modified"), 0 points: the worker lets print()
switch the trace off only while torch's printing code is exactly what it was before any student
code was loaded.
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
