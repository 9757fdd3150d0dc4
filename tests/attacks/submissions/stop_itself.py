"""Attack: softmax sends SIGSTOP to itself (a stopped process never answers, never exits, and
ignores everything but SIGKILL and SIGCONT).

Must get: losses.softmax TIMEOUT, 0 points; the stopped worker is killed, and no process is left.
"""

import os
import signal


def softmax(acts, dim=-1):
    os.kill(os.getpid(), signal.SIGSTOP)
    return acts
