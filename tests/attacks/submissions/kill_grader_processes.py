"""Attack: send SIGKILL to every process it can name: kill(-1) (everything), its parent, its
process group, pid 1, and every pid listed in /proc.

Must get: losses.softmax ERROR listing the refusals ("Operation not permitted" / no such
process), 0 points; the grader, the batch and every other student's result are unaffected.
"""

import os
import signal


def softmax(acts, dim=-1):
    me = os.getpid()
    targets = {-1: "everything", os.getppid(): "parent", 1: "pid 1", -os.getpgid(0): "own group"}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != me:
            targets.setdefault(int(entry), "listed in /proc")
    results = []
    for pid, what in targets.items():
        if pid in (0, me):
            continue
        try:
            os.kill(pid, signal.SIGKILL)
            results.append(f"{what} ({pid}): KILLED")
        except OSError as e:
            results.append(f"{what}: {e.strerror}")
    raise RuntimeError("; ".join(results))
