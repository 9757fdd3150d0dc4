"""Benchmark 1: a class of generated submissions through `grade batch --jobs 2`.

Run: ``.venv/bin/python bench/batch_throughput.py [-n 200] [--jobs 2] [--hidden-seed]``.

The class (tests/batch_synth.py) is 30% correct, 60% with one or two known mistakes, 10% partly
the stubs; every file is unique. Figures, all from this run:

* submissions per second: end to end (the whole command: start-up, grading, feedback, exports)
  and steady (first to last recorded result, from the gradebook's timestamps);
* CPU-ms per submission: every process of the batch (parent, grading processes, fork-servers,
  workers), from ``RUSAGE_CHILDREN``;
* the baseline, measured in the same run: ``grade FILE`` once per student, as a shell loop would
  (5 students, timed one after the other), and the ratio of the two.

Target (issue 4): >= 25 submissions/s on the 2-core machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
GRADE = str(Path(sys.executable).parent / "grade")

from batch_synth import make_class  # noqa: E402


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_batch(subs: Path, out: Path, jobs: int, config: Path | None) -> dict[str, float]:
    cmd = [GRADE, "batch", str(subs), "--out", str(out), "--jobs", str(jobs), "--progress", "none"]
    if config is not None:
        cmd += ["--config", str(config)]
    cpu0, wall0 = children_cpu(), time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    wall, cpu = time.time() - wall0, children_cpu() - cpu0
    db = sqlite3.connect(out / "gradebook.sqlite")
    stamps = sorted(
        dt.datetime.fromisoformat(r[0]).timestamp() for r in db.execute("SELECT graded_at FROM gradings")
    )
    n = len(stamps)
    parent_cpu = db.execute("SELECT parent_cpu_seconds FROM runs ORDER BY id DESC").fetchone()[0]
    db.close()
    return {
        "n": n,
        "wall": wall,
        "cpu": cpu,
        "first": stamps[0] - wall0,
        "steady": (n - 1) / (stamps[-1] - stamps[0]) if n > 1 else 0.0,
        "parent_cpu": parent_cpu or 0.0,
    }


def per_student_cli(files: list[Path], config: Path | None) -> float:
    """Median seconds of `grade FILE` (a fresh process per student)."""
    times = []
    for f in files:
        cmd = [GRADE, str(f), "--json"] + (["--config", str(config)] if config else [])
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=200, help="submissions (default 200)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument(
        "--hidden-seed", action="store_true", help="grade with a course file holding a hidden seed"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="imgclass-bench-") as tmp:
        base = Path(tmp)
        kinds = make_class(ROOT / "tests" / "submissions", base / "subs", args.n)
        config = None
        if args.hidden_seed:
            config = base / "course.toml"
            config.write_text("[grading]\nhidden_seed = 8675309\n")
        mix = {k: list(kinds.values()).count(k) for k in sorted(set(kinds.values()))}
        print(f"class: {args.n} submissions {mix}; {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}")
        print(f"hidden seed: {'yes' if config else 'no'}; feedback: markdown + json (the default)")
        cli = per_student_cli(sorted((base / "subs").glob("*.py"))[:5], config)
        r = run_batch(base / "subs", base / "out", args.jobs, config)
        per_sub = r["wall"] / r["n"]
        print(f"grade batch --jobs {args.jobs}: {r['n']} graded in {r['wall']:.1f} s")
        print(f"  end to end:  {r['n'] / r['wall']:.2f} submissions/s  ({1000 * per_sub:.0f} ms each)")
        print(f"  steady:      {r['steady']:.2f} submissions/s  (first result after {r['first']:.1f} s)")
        print(f"  CPU:         {1000 * r['cpu'] / r['n']:.0f} CPU-ms per submission, all processes")
        print(f"               ({1000 * r['parent_cpu'] / r['n']:.0f} of them in the batch parent)")
        print(f"baseline, same run: `grade FILE` per student: {cli:.2f} s each (median of 5)")
        print(f"ratio: batch is {cli / per_sub:.1f}x faster per submission than a `grade` loop")
        print(
            f"target >= 25 submissions/s: {'met' if r['n'] / r['wall'] >= 25 else 'NOT met'} end to end, "
            f"{'met' if r['steady'] >= 25 else 'NOT met'} steady; load now {os.getloadavg()[0]:.2f}"
        )


if __name__ == "__main__":
    main()
