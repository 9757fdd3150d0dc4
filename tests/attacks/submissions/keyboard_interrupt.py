"""Attack: softmax raises KeyboardInterrupt (as if Ctrl-C had been pressed in the grader).

Must get: losses.softmax ERROR ("KeyboardInterrupt"), 0 points; the grader does not stop.
"""


def softmax(acts, dim=-1):
    raise KeyboardInterrupt
