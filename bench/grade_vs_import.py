"""Benchmark: `grade solutions/` against `python -c "import torch"`, measured in the same run.

Target (issue: the kit's core): ratio <= 1.5 — grading every exercise costs less than half a
torch import on top of the import itself. Runs are interleaved so machine noise hits both alike.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRADE = str(Path(sys.executable).parent / "grade")
ROUNDS = 7


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> None:
    baseline_cmd = [sys.executable, "-c", "import torch"]
    grade_cmd = [GRADE, "solutions/"]
    timed(baseline_cmd), timed(grade_cmd)  # warm the file cache
    base, grade = [], []
    for _ in range(ROUNDS):
        base.append(timed(baseline_cmd))
        grade.append(timed(grade_cmd))
    b, g = statistics.median(base), statistics.median(grade)
    ratios = [gi / bi for gi, bi in zip(grade, base)]
    print(f"python -c 'import torch': median {b:.3f} s (min {min(base):.3f})")
    print(f"grade solutions/:         median {g:.3f} s (min {min(grade):.3f})")
    print(f"ratio (median of paired runs): {statistics.median(ratios):.2f}  [target <= 1.5]")


if __name__ == "__main__":
    main()
