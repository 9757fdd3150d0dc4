"""What the whole sandbox costs one submission, measured in one run against a bare fork.

Run: ``.venv/bin/python bench/sandbox_grade_overhead.py [-n 30]``.

Three ways to run the same honest submission (tests/submissions/all_correct.py, every exercise),
round-robin so that noise from other jobs hits all three alike, each with its own Grader
(fork-server, plan built before timing):

* ``bare``: the worker only forks, redirects its output and serves: no rlimits, no namespaces,
  no uid change, no seccomp, no environment scrub (``grader.sandbox._isolate`` stubbed out to
  apply nothing);
* ``minimal``: ``Settings(isolation="minimal")``, the laptop fallback: process boundary, rlimits,
  scrubbed environment, timeouts;
* ``auto``: every layer this machine supports, the kernel probes included (as root).

All three run the runner's tamper checks (they are part of the worker, not of the isolation).
The figure of interest is the per-submission wall time of ``auto`` minus ``bare``: the sandbox's
overhead. A second table times only a worker's life (spawn, hello, exit) for the same three.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader import sandbox  # noqa: E402
from grader.api import Grader  # noqa: E402
from grader.sandbox import OutputCapture, Worker  # noqa: E402
from grader.settings import Settings  # noqa: E402
from grader.submission import read_submission  # noqa: E402

SUBMISSION = ROOT / "tests" / "submissions" / "all_correct.py"


def _worker_life(grader: Grader) -> float:
    start = time.perf_counter()
    worker = Worker(grader.zygote, grader.settings.policy(), OutputCapture())
    hello, _ = worker.recv(time.monotonic() + 60)
    assert hello.get("op") == "hello", hello
    worker.finish()
    return (time.perf_counter() - start) * 1000


def _summary(values: list[float]) -> str:
    return f"median {statistics.median(values):7.1f} ms   min {min(values):7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30, help="submissions of each kind (default 30)")
    args = parser.parse_args()

    kinds = ("bare", "minimal", "auto")
    # The bare grader's fork-server must be forked while the stub is in place.
    original = sandbox._isolate
    sandbox._isolate = lambda policy, **_: ()  # type: ignore[assignment]
    try:
        graders: dict[str, Any] = {"bare": Grader(Settings(isolation="minimal"), zygote_mode="fork")}
    finally:
        sandbox._isolate = original  # type: ignore[assignment]
    graders["minimal"] = Grader(Settings(isolation="minimal"), zygote_mode="fork")
    graders["auto"] = Grader(Settings(isolation="auto"), zygote_mode="fork")
    submission = read_submission(SUBMISSION, graders["auto"].modules)
    layers: dict[str, tuple[str, ...]] = {}
    grade_ms: dict[str, list[float]] = {k: [] for k in kinds}
    life_ms: dict[str, list[float]] = {k: [] for k in kinds}
    try:
        for kind in kinds:  # warm-up: plans, first workers, imports in the fork-servers
            report = graders[kind].grade_submission(submission)
            assert report.score == report.max_score, (kind, report.crash)
            layers[kind] = report.isolation
            _worker_life(graders[kind])
        for i in range(args.n):
            order = kinds if i % 2 == 0 else tuple(reversed(kinds))
            for kind in order:
                start = time.perf_counter()
                report = graders[kind].grade_submission(submission)
                grade_ms[kind].append((time.perf_counter() - start) * 1000)
                assert report.score == report.max_score, (kind, report.crash)
                life_ms[kind].append(_worker_life(graders[kind]))
    finally:
        for g in graders.values():
            g.close()

    print(f"machine: {os.uname().sysname} {os.uname().release}, {os.cpu_count()} CPUs, euid {os.geteuid()}")
    print(f"submission: {SUBMISSION.relative_to(ROOT)} ({len(graders['auto'].exercises)} exercises)")
    print(f"rounds: {args.n} (round-robin)")
    for kind in kinds:
        print(f"layers [{kind:7}]: {', '.join(layers[kind])}")
    print("\nwhole submission (grade_submission, wall time)")
    for kind in kinds:
        print(f"  {kind:8} {_summary(grade_ms[kind])}")
    print("\none worker's life (spawn, hello, exit)")
    for kind in kinds:
        print(f"  {kind:8} {_summary(life_ms[kind])}")
    med = {k: statistics.median(v) for k, v in grade_ms.items()}
    low = {k: min(v) for k, v in grade_ms.items()}
    print(
        f"\nsandbox overhead per submission (auto - bare): {med['auto'] - med['bare']:.1f} ms (medians), "
        f"{low['auto'] - low['bare']:.1f} ms (minima)"
    )
    print(
        f"fallback overhead per submission (minimal - bare): {med['minimal'] - med['bare']:.1f} ms (medians), "
        f"{low['minimal'] - low['bare']:.1f} ms (minima)"
    )


if __name__ == "__main__":
    main()
