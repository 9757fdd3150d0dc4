"""Attack: look for the reference solutions, the course config, the gradebook and other students'
submissions: `import solutions`, the grader's own folder, parents of the working directory, and a
walk of the visible file system for solutions/, course.toml, gradebook files and any .py or
.ipynb that defines softmax.

Must get: losses.softmax ERROR with the message "found nothing", 0 points; no secret text in the
report.
"""

import os
import sys

NAMES = ("course.toml", "gradebook", "solutions", "submissions", ".ipynb")
SKIP = ("/proc", "/sys", "/dev", "/usr", "/lib", "/bin", "/sbin", "/etc")


def _interesting(path, name):
    if any(n in name for n in NAMES):
        return True
    if name.endswith((".py", ".ipynb")) and "site-packages" not in path and "/lib/python3" not in path:
        try:
            with open(os.path.join(path, name), errors="replace") as f:
                return "def softmax" in f.read(200_000)
        except OSError:
            return False
    return False


def softmax(acts, dim=-1):
    found = []
    for name in ("solutions", "solutions.losses", "course", "grader.specs"):
        try:
            module = __import__(name)
            found.append(f"import {name}: {getattr(module, '__file__', module)}")
        except BaseException:
            pass
    starts = {os.getcwd(), "/", "/work", "/root", "/home", "/tmp", "/srv", "/opt", "/mnt", "/var"}
    grader = sys.modules.get("grader")
    if grader is not None and getattr(grader, "__file__", None):
        starts.add(os.path.dirname(os.path.dirname(grader.__file__)))
    for p in sys.path:
        if p:
            starts.add(os.path.dirname(p))
    seen = 0
    for start in sorted(starts):
        for path, dirs, files in os.walk(start):
            if path.startswith(SKIP) or seen > 20_000:
                dirs[:] = []
                continue
            dirs[:] = [d for d in dirs if d not in ("site-packages", "__pycache__", "lib-dynload")]
            seen += 1
            for name in dirs + files:
                if _interesting(path, name):
                    full = os.path.join(path, name)
                    try:
                        with open(full, errors="replace") as f:
                            found.append(f"{full}: {f.read(300)!r}")
                    except OSError:
                        if os.path.isdir(full) and os.listdir(full):
                            found.append(f"{full}/: {os.listdir(full)[:10]}")
    raise RuntimeError("LEAKED " + " | ".join(found) if found else "found nothing")
