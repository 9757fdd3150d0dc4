"""Attack: softmax raises a BaseException subclass whose str() and repr() raise, and log_softmax
raises an exception with a 50 MB message.

Must get: losses.softmax ERROR ("could not show this value"), losses.log_softmax ERROR (message
cut short), 0 points; the grader does not crash on either exception.
"""


class Sneaky(BaseException):
    def __str__(self):
        raise RuntimeError("no message for you")

    def __repr__(self):
        raise RuntimeError("no repr either")


def softmax(acts, dim=-1):
    raise Sneaky()


def log_softmax(acts, dim=-1):
    raise ValueError("PASSED " * 7_000_000)
