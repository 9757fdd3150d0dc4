"""Attack: return the lesson's printed 6x2 softmax output for every call, whatever the input.

Must get: losses.softmax FAILED, 0 points: the lesson's case is checked but carries no weight,
and every generated case fails.
"""

import torch

LESSON = torch.tensor(
    [
        [0.6025, 0.3975],
        [0.5021, 0.4979],
        [0.1332, 0.8668],
        [0.9966, 0.0034],
        [0.5959, 0.4041],
        [0.3661, 0.6339],
    ]
)


def softmax(acts, dim=-1):
    return LESSON.clone()
