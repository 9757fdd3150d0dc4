"""Attack: sys.exit(0) at import time (raises SystemExit(0) while the module is executed).

Must get: every exercise ERROR ("SystemExit"), 0 points.
"""

import sys

sys.exit(0)


def softmax(acts, dim=-1):
    return acts
