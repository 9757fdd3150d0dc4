"""Attack: ignore or catch every catchable signal at import, then loop forever in softmax.

Must get: losses.softmax TIMEOUT, 0 points (SIGKILL cannot be caught); log_softmax, honest,
PASSES in a fresh worker.
"""

import signal

import torch

for sig in signal.valid_signals():
    try:
        signal.signal(sig, signal.SIG_IGN)
    except (OSError, ValueError, RuntimeError):
        pass


def softmax(acts, dim=-1):
    while True:
        pass


def log_softmax(acts, dim=-1):
    m = acts.detach().amax(dim=dim, keepdim=True)
    s = acts - m
    return s - torch.log(torch.exp(s).sum(dim=dim, keepdim=True))
