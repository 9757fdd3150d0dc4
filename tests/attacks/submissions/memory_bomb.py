"""Attack: softmax takes memory in 256 MiB blocks until it runs out (a runaway allocation).

Must get: losses.softmax ERROR (torch "can't allocate memory": RLIMIT_AS stops the worker at its
headroom, long before the machine runs short), 0 points; the grader itself is unaffected.
"""

import torch


def softmax(acts, dim=-1):
    hoard = []
    while True:
        hoard.append(torch.empty(256 << 20, dtype=torch.uint8))
