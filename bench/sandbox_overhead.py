"""What isolation.enter() costs a fork-server worker, measured against a bare fork.

Run: ``.venv/bin/python bench/sandbox_overhead.py [-n 40]``. One zygote-like process (torch
imported, one thread, pyseccomp imported, ``isolation.prepare()`` called) forks N workers that
exit at once ("bare fork") and N workers that call ``isolation.enter(Policy())`` and then exit
("isolated"), alternating between the two so that noise from other jobs hits both alike. Each
figure is wall time in the zygote from ``fork()`` until the worker is reaped (for the isolated
worker that includes the supervisor, pid 1 and the namespaces going away), plus the time
``enter()`` itself took inside the isolated worker.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pyseccomp  # noqa: F401
import torch

from grader import isolation


def _fork_worker(isolated: bool, workdir: str, policy: isolation.Policy) -> tuple[float, dict[str, object]]:
    """Fork one worker; return (ms from fork to reaped, what the worker reported)."""
    read_end, write_end = os.pipe()
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(read_end)
            if isolated:
                os.setsid()
                os.chdir(workdir)
                t0 = time.perf_counter()
                layers = isolation.enter(policy)
                enter_ms = (time.perf_counter() - t0) * 1000
                os.write(write_end, json.dumps({"layers": layers, "enter_ms": enter_ms}).encode())
        except BaseException:
            code = 1
        os._exit(code)
    os.close(write_end)
    data = b""
    while chunk := os.read(read_end, 65536):
        data += chunk
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    elapsed = (time.perf_counter() - start) * 1000
    if status != 0:
        raise SystemExit(f"worker failed with wait status {status}")
    return elapsed, json.loads(data) if data else {}


def _summary(values: list[float]) -> str:
    return f"median {statistics.median(values):6.2f} ms   min {min(values):6.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=40, help="workers of each kind (default 40)")
    args = parser.parse_args()

    torch.set_num_threads(1)
    _ = (torch.ones(256, 256) @ torch.ones(256, 256)).sum().item()
    caps = isolation.prepare()
    policy = isolation.Policy()
    workdir = tempfile.mkdtemp(prefix="bench-worker-")

    bare: list[float] = []
    isolated: list[float] = []
    enter_ms: list[float] = []
    layers: object = None
    _fork_worker(False, workdir, policy)  # warm-up, not counted
    _fork_worker(True, workdir, policy)
    for i in range(args.n):
        order = (False, True) if i % 2 == 0 else (True, False)
        for kind in order:
            elapsed, report = _fork_worker(kind, workdir, policy)
            if kind:
                isolated.append(elapsed)
                enter_ms.append(float(report["enter_ms"]))  # type: ignore[arg-type]
                layers = report["layers"]
            else:
                bare.append(elapsed)

    print(f"machine: {os.uname().sysname} {os.uname().release}, {os.cpu_count()} CPUs, euid {os.geteuid()}")
    print(f"capabilities: {caps}")
    print(f"layers active: {', '.join(layers) if isinstance(layers, list) else layers}")
    print(f"workers of each kind: {args.n} (round-robin)")
    print(f"bare fork + exit:          {_summary(bare)}")
    print(f"fork + enter() + exit:     {_summary(isolated)}")
    print(f"enter() inside the worker: {_summary(enter_ms)}")
    overhead_median = statistics.median(isolated) - statistics.median(bare)
    overhead_min = min(isolated) - min(bare)
    print(
        f"isolation overhead per worker: {overhead_median:.2f} ms (medians), {overhead_min:.2f} ms (minima)"
    )


if __name__ == "__main__":
    main()
