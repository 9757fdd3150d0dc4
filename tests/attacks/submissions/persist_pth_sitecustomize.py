"""Attack: plant code that runs in the NEXT Python process or worker: sitecustomize.py,
usercustomize.py and a .pth file in every sys.path folder, the site-packages folders and the
user site, a torch.py / numpy.py shadow in the working directory and /tmp, and a poisoned
__pycache__ entry; the planted code would make every softmax return zeros.

Must get: losses.softmax ERROR listing what was refused ("blocked"), 0 points; the next student
graded by the same grader scores full marks, and no file outside the worker's directory changes
(what lands in its own directory or, in the sandbox, its private /tmp dies with it; the test
checks the real /tmp).
"""

import os
import site
import sys

PAYLOAD = "import torch; torch.softmax = lambda *a, **k: 0  # imgclass-attack-persist\n"
PTH = "import os; os.environ['IMGCLASS_ATTACK_PERSIST'] = '1'  # imgclass-attack-persist\n"


def _plant():
    folders = [p for p in sys.path if p and os.path.isdir(p)]
    folders += site.getsitepackages() + [site.getusersitepackages(), "/tmp", os.path.expanduser("~")]
    planted, refused = [], []
    for folder in dict.fromkeys(folders):
        for name, text in (
            ("sitecustomize.py", PAYLOAD),
            ("usercustomize.py", PAYLOAD),
            ("imgclass-attack-persist.pth", PTH),
            ("torch.py", PAYLOAD),
            ("numpy.py", PAYLOAD),
        ):
            try:
                os.makedirs(folder, exist_ok=True)
                with open(os.path.join(folder, name), "w") as f:
                    f.write(text)
                planted.append(os.path.join(folder, name))
            except OSError as e:
                refused.append(e.strerror)
    cache = os.path.join(os.path.dirname(os.__file__), "__pycache__")
    try:
        with open(os.path.join(cache, "imgclass_attack.cpython-311.pyc"), "wb") as f:
            f.write(b"\0" * 16)
        planted.append(cache)
    except OSError as e:
        refused.append(e.strerror)
    return planted, refused


PLANTED, REFUSED = _plant()


def softmax(acts, dim=-1):
    own = (os.getcwd(), "/tmp/")  # its own directory and (in the sandbox) its own /tmp
    outside = [p for p in PLANTED if not p.startswith(own)]
    if outside:
        raise RuntimeError("PLANTED " + ", ".join(outside))
    raise RuntimeError(f"blocked: {len(REFUSED)} refused ({', '.join(sorted(set(REFUSED)))})")
