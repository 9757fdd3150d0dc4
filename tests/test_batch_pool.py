"""The local pool of grading processes: results stream back, a dead or stuck grading process is
replaced and its work retried (a task that keeps killing it becomes a grader error)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from conftest import ZOO

from grader.batch.pool import LocalPool
from grader.batch.tasks import missing_layers, submission_to_dict
from grader.settings import Settings
from grader.submission import read_submission

SETTINGS = Settings(exercises=("regex_labels.is_cat", "losses.softmax"), timeout=3, import_timeout=3)
MODULES = ("regex_labels", "presizing", "losses", "interpretation", "learning_rates")


def _task(i: int, path=ZOO / "all_correct.py") -> dict:
    return {"id": i, "submission": submission_to_dict(read_submission(path, MODULES))}


@pytest.fixture
def pool():
    p = LocalPool(SETTINGS, jobs=2)
    try:
        yield p
    finally:
        p.kill()


def test_results_stream_back_and_the_sandbox_is_complete(pool):
    layers = pool.start()
    assert len(layers) == 2 and all(not missing_layers(ls) for ls in layers)
    results = list(pool.run(_task(i) for i in range(5)))
    assert sorted(r["id"] for r in results) == list(range(5))
    assert all(r["report"]["score"] == r["report"]["max_score"] == 3 for r in results)
    assert all(r["seconds"] > 0 for r in results)


def test_a_grading_process_that_dies_is_replaced_and_its_work_retried(pool):
    pool.start()
    results = []
    for result in pool.run(_task(i) for i in range(8)):
        results.append(result)
        if len(results) == 1:
            os.kill(pool._children[0].proc.pid, signal.SIGKILL)
    assert sorted(r["id"] for r in results) == list(range(8))
    assert all("report" in r and r["report"]["score"] == 3 for r in results)
    assert pool.restarts == 1


def test_a_task_that_keeps_a_grading_process_stuck_becomes_a_grader_error(pool):
    pool.start()
    pool.stuck_after = 1.0  # the infinite loop runs for the exercise timeout (3 s): "stuck" here
    tasks = [_task(0, ZOO / "infinite_loop.py"), _task(1)]
    results = {r["id"]: r for r in pool.run(tasks)}
    assert "stuck" in results[0]["error"]
    assert results[1]["report"]["score"] == 3
    assert pool.restarts == 2  # tried twice, then given up on


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="Linux only")
def test_freed_memory_is_kept_for_the_next_submission():
    """A grading process frees MBs of results per submission: with keep_freed_memory the next
    ones reuse that memory instead of faulting in new pages (30 rounds fault about as often as one)."""
    sizes = [1_500_000, 3_000_000, 200_000, 6_000_000, 700_000]
    one_round = sum(sizes) // 4096
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        import resource

        from grader.memory import keep_freed_memory

        keep_freed_memory()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(30):
            blocks = [bytearray(n) for n in sizes]
            del blocks
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        os.write(write, str(faults).encode())
        os._exit(0)
    os.close(write)
    faults = int(os.read(read, 64))
    os.close(read)
    os.waitpid(pid, 0)
    assert faults < 1.5 * one_round, f"{faults} page faults for 30 rounds of {one_round} pages"


def test_closing_without_waiting_leaves_the_reaping_for_later(pool):
    """The batch writes its exports while the grading processes wind down; then it reaps them."""
    pool.start()
    procs = [child.proc for child in pool._children]
    pool.close(wait=False)
    assert len(pool._children) == 2  # not waited for yet
    pool.close()
    assert pool._children == []
    assert all(proc.poll() is not None for proc in procs)  # gone, and reaped


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="no SCHED_BATCH here")
def test_a_batch_runs_as_a_batch_job_and_so_do_the_processes_it_starts():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        from grader.batch.pool import batch_scheduling

        before = os.sched_getscheduler(0)
        restore = batch_scheduling()
        grandchild = os.fork()
        if grandchild == 0:
            os._exit(0 if os.sched_getscheduler(0) == os.SCHED_BATCH else 1)
        _, status = os.waitpid(grandchild, 0)
        mine = os.sched_getscheduler(0) == os.SCHED_BATCH
        restore()
        back = os.sched_getscheduler(0) == before
        os.write(write, f"{mine} {os.waitstatus_to_exitcode(status) == 0} {back}".encode())
        os._exit(0)
    os.close(write)
    answer = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == "True True True"  # this process, a process it started, and given back after


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity here")
def test_each_grading_process_and_its_fork_server_keep_to_one_cpu(pool):
    allowed = sorted(os.sched_getaffinity(0))
    pool.start()
    cpus = [os.sched_getaffinity(c.proc.pid) for c in pool._children]
    assert all(len(c) == 1 and c <= set(allowed) for c in cpus)
    if len(allowed) >= 2:
        assert cpus[0] != cpus[1]  # one job per core
    for child, cpu in zip(pool._children, cpus):
        kids = Path(f"/proc/{child.proc.pid}/task/{child.proc.pid}/children")
        forkservers = [int(p) for p in kids.read_text().split()] if kids.exists() else []
        assert forkservers, "the grading process has started its fork-server"
        assert all(os.sched_getaffinity(p) == cpu for p in forkservers)
    # a replacement takes the CPU its predecessor left
    os.kill(pool._children[0].proc.pid, signal.SIGKILL)
    results = list(pool.run(_task(i) for i in range(4)))
    assert len(results) == 4
    assert sorted(next(iter(os.sched_getaffinity(c.proc.pid))) for c in pool._children) == sorted(
        next(iter(c)) for c in cpus
    )
