"""Attack: a fork bomb inside softmax (fork, and every child forks again, forever).

Must get: losses.softmax ERROR (fork is refused: "PermissionError"/"Operation not permitted" under
seccomp; a pid namespace and limits bound it otherwise), 0 points; no process survives.
"""

import os


def softmax(acts, dim=-1):
    while True:
        os.fork()
