"""Attack: write 100 MB to stdout and 10 MB to stderr at import, without newlines, then answer
honestly.

Must get: losses.softmax PASSED (the honest answer earns its points); the report keeps only the
first 64 KiB of output and counts the rest; the grader's memory and the batch are unaffected.
"""

import os
import sys

import torch

_chunk = "imgclass-attack-flood " * 4096
for _ in range(100_000_000 // len(_chunk) + 1):
    sys.stdout.write(_chunk)
sys.stdout.flush()
os.write(2, b"E" * 10_000_000)


def softmax(acts, dim=-1):
    m = acts.detach().amax(dim=dim, keepdim=True)
    e = torch.exp(acts - m)
    return e / e.sum(dim=dim, keepdim=True)
