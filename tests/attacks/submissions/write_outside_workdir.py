"""Attack: write or delete files outside the worker's own directory: the gradebook, the report
output folder and the course config (guessed, and searched for in every folder it can list), the
grader's own source and the reference solutions (found through the grader's paths), $HOME of the
grader, the site-packages folders, /tmp and /etc.

Must get: losses.softmax ERROR whose message shows every write refused ("blocked"), 0 points; no
file outside the worker's temporary directory changes. (Its working directory and, in the
sandbox, its /tmp are its own: writes there do not count, and the test checks the real /tmp.)
"""

import os
import site
import sys

MARK = "imgclass-attack-write-outside\n"


def softmax(acts, dim=-1):
    own = (os.getcwd(), "/tmp")
    targets = ["/etc/imgclass-attack", "/tmp/imgclass-attack-write", "/root/imgclass-attack",
               "/work/imgclass-attack", "/gradebook.json", "/out/report.json", "/imgclass-attack"]
    for p in sys.path:
        if p:
            targets.append(os.path.join(p, "imgclass-attack-write.txt"))
    for p in site.getsitepackages() + [site.getusersitepackages()]:
        targets.append(os.path.join(p, "imgclass-attack-write.txt"))
    grader = sys.modules.get("grader")
    if grader is not None and getattr(grader, "__file__", None):
        root = os.path.dirname(os.path.dirname(grader.__file__))
        for rel in ("solutions/losses.py", "grader/engine.py", "course.toml", "gradebook.json", "out/x.json"):
            targets.append(os.path.join(root, rel))
    for start in ("/tmp", "/work", "/root", "/home", "/srv", "/var", os.path.dirname(os.getcwd())):
        for path, dirs, files in os.walk(start):
            dirs[:] = [d for d in dirs if d not in (".venv", ".pyenv", "site-packages", "proc")][:50]
            for name in files:
                if "gradebook" in name or name in ("course.toml", "report.json") or path.endswith("/out"):
                    targets.append(os.path.join(path, name))
            if os.path.basename(path) == "out":
                targets.append(os.path.join(path, "imgclass-attack-write.json"))
    wrote, refused = [], []
    for target in targets:
        try:
            with open(target, "a") as f:
                f.write(MARK)
            if not target.startswith(own):
                wrote.append(target)
        except OSError as e:
            refused.append(e.strerror)
    for victim in ("/work", "/etc", "/usr/lib"):
        try:
            os.rmdir(victim)
            wrote.append("rmdir " + victim)
        except OSError:
            pass
    if wrote:
        raise RuntimeError("WROTE " + ", ".join(wrote))
    raise RuntimeError(f"blocked: {len(refused)} writes refused ({', '.join(sorted(set(refused)))})")
