"""Attack: return objects whose __reduce__ would run a command when unpickled (alone, inside a
list, and as an exception argument).

Must get: losses.softmax FAILED ("returned a"), losses.log_softmax FAILED, losses.nll_loss ERROR;
0 points, and the marker file the payload would create never appears: nothing is unpickled.
"""

import os

MARKER = "/tmp/imgclass-attack-reduce-payload"


class Payload:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


def softmax(acts, dim=-1):
    return Payload()


def log_softmax(acts, dim=-1):
    return [acts, Payload()]


def nll_loss(log_probs, targets, reduction="mean"):
    raise ValueError(Payload())
