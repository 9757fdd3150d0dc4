"""Benchmark 3: peak RSS of the `grade batch` parent for 200 vs 2,000 submissions (must stay flat).

Run: ``.venv/bin/python bench/batch_memory.py [--small 200] [--large 2000] [--jobs 2]`` (the large
class takes several minutes).

The parent streams: submissions are read when a grading process has room for them, results are
written to the gradebook (and feedback to disk) as they arrive and then dropped, and the exports
are aggregated in SQL. Each run records the parent's own peak RSS (``ru_maxrss`` of the parent
alone, not of the grading processes) in the gradebook's ``runs`` table; this script prints both
and their ratio, measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
GRADE = str(Path(sys.executable).parent / "grade")

from batch_synth import make_class  # noqa: E402


def measure(base: Path, n: int, jobs: int) -> tuple[float, float, float]:
    """(parent peak RSS MiB, seconds, gradebook MiB) for a class of ``n``."""
    subs, out = base / f"subs{n}", base / f"out{n}"
    make_class(ROOT / "tests" / "submissions", subs, n)
    start = time.perf_counter()
    subprocess.run(
        [GRADE, "batch", str(subs), "--out", str(out), "--jobs", str(jobs), "--progress", "none"],
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=ROOT,
    )
    seconds = time.perf_counter() - start
    db = sqlite3.connect(out / "gradebook.sqlite")
    peak_kb, graded = db.execute("SELECT parent_peak_rss_kb, graded FROM runs ORDER BY id DESC").fetchone()
    db.close()
    assert graded == n, (graded, n)
    return peak_kb / 1024, seconds, (out / "gradebook.sqlite").stat().st_size / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=200)
    ap.add_argument("--large", type=int, default=2000)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="imgclass-rss-") as tmp:
        base = Path(tmp)
        print(f"{os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}")
        small = measure(base, args.small, args.jobs)
        print(
            f"{args.small:>5} submissions: parent peak RSS {small[0]:6.1f} MiB  ({small[1]:.0f} s, gradebook {small[2]:.0f} MiB)"
        )
        large = measure(base, args.large, args.jobs)
        print(
            f"{args.large:>5} submissions: parent peak RSS {large[0]:6.1f} MiB  ({large[1]:.0f} s, gradebook {large[2]:.0f} MiB)"
        )
        ratio = large[0] / small[0]
        print(
            f"ratio {args.large} vs {args.small}: {ratio:.2f}  ({'flat' if ratio < 1.15 else 'NOT flat'}: "
            f"{args.large // args.small}x the submissions)"
        )


if __name__ == "__main__":
    main()
