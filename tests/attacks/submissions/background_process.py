"""Attack: start processes meant to outlive the grade (a new session via subprocess, a
double-forked daemon, multiprocessing, posix_spawn), each carrying a marker in its command line.

Must get: losses.softmax ERROR whose message lists how each attempt was refused
("Operation not permitted"), 0 points, and no process with the marker exists afterwards.
"""

import multiprocessing
import os
import subprocess

MARKER = "imgclass-attack-background-process"


def softmax(acts, dim=-1):
    refused = []
    attempts = {
        "popen": lambda: subprocess.Popen(
            ["/bin/sh", "-c", f"exec sleep 600 # {MARKER}"], start_new_session=True
        ),
        "posix_spawn": lambda: os.posix_spawn("/bin/sleep", ["sleep", "600", MARKER], {}),
        "fork": os.fork,
        "multiprocessing": lambda: multiprocessing.get_context("fork").Process(
            target=os.system, args=(f"sleep 600 # {MARKER}",)
        ).start(),
    }
    for name, attempt in attempts.items():
        try:
            pid = attempt()
        except BaseException as e:
            refused.append(f"{name}: {type(e).__name__}: {e}")
            continue
        if pid == 0:  # the forked child: become a daemon and wait
            os.setsid()
            os.execv("/bin/sleep", ["sleep", "600", MARKER])
        refused.append(f"{name}: STARTED")
    raise RuntimeError("; ".join(refused))
