"""Attack: softmax sleeps for an hour (no CPU use, so RLIMIT_CPU never fires).

Must get: losses.softmax TIMEOUT ("took longer than"), 0 points: the per-exercise wall clock, not
the CPU limit, ends it.
"""

import time


def softmax(acts, dim=-1):
    time.sleep(3600)
    return acts
