"""Attack: os._exit(0) while the module is imported (exit code 0, before any function exists).

Must get: every exercise ERROR ("importing ... ended the worker"), 0 points. Exit code 0 must not
look like success.
"""

import os

os._exit(0)


def softmax(acts, dim=-1):
    return acts
