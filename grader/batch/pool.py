"""A pool of local grading processes, each a :class:`grader.api.Grader` (one fork-server + one plan).

Why processes and not threads: the trusted side of grading (sending cases, decoding outputs,
comparing, diagnosing) is Python under the GIL, so threads in one parent cannot use a second core
for it. Each grading process builds the plan once, keeps one warm fork-server that forks a fresh
isolated worker per submission, and talks to the batch parent in JSON lines over its stdin and
stdout — no pickle anywhere. The parent keeps two tasks queued per process so that no process
waits for a round trip.

Run a grading process by hand (for debugging) with ``python -m grader.batch.pool``: the first
line on stdin is ``{"settings": {...}, "only": [...]}``, then one task per line.

On Linux the first grading processes are forked from the batch parent (:meth:`LocalPool.launch`,
called before discovery, while the parent holds nothing but the course settings), so torch is
imported once for the whole batch instead of once more per process; a replacement for a grading
process that died is a fresh interpreter (by then the parent holds the class's data).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, NoReturn

from grader.errors import GraderError
from grader.memory import keep_freed_memory
from grader.settings import Settings

from .tasks import ProbeFailed, grade_payload, probe_layers, settings_from_dict, settings_to_dict

#: A grading process gets this long on top of the submission's own time budget before it is
#: presumed stuck, killed and restarted.
STUCK_MARGIN = 60.0
#: A task whose grading process died this many times is given up on (recorded as a grader error).
MAX_ATTEMPTS = 2
#: The grading process's first garbage-collection threshold (Python's default: 700), see child_main.
GRADING_GC_THRESHOLD = 20_000


def job_count(jobs: int | None) -> int:
    """How many submissions a batch grades at once: ``jobs``, or one per core."""
    return max(1, jobs or os.cpu_count() or 1)


class PoolError(GraderError):
    """The grading processes could not be started."""


# ----------------------------------------------------------------------------- child side


def set_pdeathsig() -> None:
    """Be killed when the parent process ends (Linux; nothing elsewhere)."""
    if sys.platform != "linux":
        return
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def batch_scheduling() -> Callable[[], None] | None:
    """Run this process, and every process it starts from now on, as a batch job (``SCHED_BATCH``).

    A batch keeps both cores busy with processes that wake each other up about 200 times per
    submission (a worker's reply, the next request). Under the default policy each wake-up may
    preempt the running process: ~54 involuntary context switches per worker. As a batch job a
    woken process waits for the running one to block or use up its time slice: ~12 per worker,
    3% less wall time for a class of 200. Interactive programs on the machine keep their edge
    over the batch. Returns a function that gives this process its policy back (the processes
    started meanwhile keep theirs); None where nothing was changed (not Linux).
    """
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is None or not hasattr(os, "sched_setscheduler"):
        return None
    try:
        before = os.sched_getscheduler(0), os.sched_getparam(0)
        os.sched_setscheduler(0, policy, os.sched_param(0))
    except OSError:
        return None

    def restore() -> None:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, *before)

    return restore


def _forked_child(stdin_fd: int, stdout_fd: int, log_fd: int | None) -> NoReturn:
    """The forked grading process: the protocol pipes on fds 0 and 1, every other fd closed, then
    :func:`child_main`. It never returns into the parent's code (its frames stay as they were)."""
    code = 1
    try:
        os.dup2(stdin_fd, 0)
        os.dup2(stdout_fd, 1)
        if log_fd is None:
            log_fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(log_fd, 2)
        os.closerange(3, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 1 << 16)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - lives as long as the process
        os.environ.update({"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
        child_main()
        code = 0
    except BaseException:
        with contextlib.suppress(BaseException):
            import traceback

            traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def child_main() -> None:
    """A grading process: settings on the first stdin line, then one task per line."""
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # anything printed by libraries goes to the log, never into the protocol
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    set_pdeathsig()
    keep_freed_memory()  # (a forked one inherited it already; a spawned one has not)

    def send(msg: dict[str, Any]) -> None:
        proto.write(json.dumps(msg, separators=(",", ":")) + "\n")

    hello = sys.stdin.readline()
    if not hello:
        return
    try:
        config = json.loads(hello)
        from grader.api import Grader

        grader = Grader(
            settings_from_dict(config["settings"]),
            only=config.get("only", ()),
            zygote_mode=config.get("zygote", "auto"),
        )
        grader.preload()  # cases and expected outputs built once; the inputs handed to the fork-server
        layers = probe_layers(grader)
    except (ProbeFailed, GraderError) as e:
        send({"op": "failed", "error": str(e)})
        return
    except Exception as e:
        send({"op": "failed", "error": f"{type(e).__name__}: {e}"})
        return
    send({"op": "ready", "pid": os.getpid(), "layers": layers})
    # torch, the plan and its expected outputs live as long as this process: keep the garbage
    # collector from walking them again after every few hundred new objects
    gc.freeze()
    # What a submission's grading creates (decoded results, the report) is freed by reference
    # counting, nearly none of it in cycles (~60 objects per submission): with the default
    # threshold (700) the collector still ran ~3 times per submission, ~1 ms in all, for nothing.
    gc.set_threshold(GRADING_GC_THRESHOLD)
    for line in sys.stdin:
        if not line.strip():
            continue
        task = json.loads(line)
        try:
            result = grade_payload(grader, task)
        except Exception as e:
            result = {"id": task.get("id"), "error": f"{type(e).__name__}: {e}"}
        send({"op": "result", **result})
    grader.close()


# ----------------------------------------------------------------------------- parent side


class _Forked:
    """A forked grading process, with the part of ``subprocess.Popen``'s interface the pool uses."""

    def __init__(self, pid: int, stdin: IO[bytes], stdout: IO[bytes]) -> None:
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -1
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired([str(self.pid)], timeout or 0.0)
            time.sleep(0.005)
        assert self.returncode is not None
        return self.returncode


@dataclass
class _Child:
    proc: subprocess.Popen[bytes] | _Forked
    number: int
    inbuf: bytearray = field(default_factory=bytearray)
    outbuf: bytearray = field(default_factory=bytearray)
    inflight: deque[tuple[int, float]] = field(default_factory=deque)  #: (task id, when sent)
    ready: bool = False
    layers: tuple[str, ...] = ()
    pid: int = 0
    cpu: int | None = None  #: the one CPU it (with its fork-server and workers) runs on

    @property
    def stdout(self) -> IO[bytes]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    @property
    def stdin(self) -> IO[bytes]:
        assert self.proc.stdin is not None
        return self.proc.stdin


class LocalPool:
    """``jobs`` grading processes on this machine; results come back as they finish."""

    name = "local"

    def __init__(
        self,
        settings: Settings,
        *,
        only: Iterable[str] = (),
        jobs: int | None = None,
        queue_per_job: int = 2,
        log: IO[bytes] | None = None,
        fork: bool = False,
    ) -> None:
        self.settings = settings
        self.only = list(only)
        self.jobs = job_count(jobs)
        self.queue_per_job = max(1, queue_per_job)
        self._log = log
        self._fork_first = fork
        self._sel = selectors.DefaultSelector()
        self._children: list[_Child] = []
        self._spawned = 0
        self._hello = (
            json.dumps({"settings": settings_to_dict(settings), "only": self.only}, separators=(",", ":"))
            + "\n"
        ).encode()
        self.stuck_after = settings.submission_timeout + STUCK_MARGIN
        self.layers: list[tuple[str, ...]] = []
        self.restarts = 0

    # -- lifecycle

    def _can_fork(self) -> bool:
        """Fork only a parent with one thread (a fork copies no other thread, nor what it held)."""
        import threading

        return (
            self._fork_first
            and sys.platform == "linux"
            and hasattr(os, "fork")
            and threading.active_count() == 1
        )

    def _fork(self) -> _Forked:
        import grader.api  # noqa: F401 - imported once here, inherited by every forked process

        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        log_fd = self._log.fileno() if self._log is not None else None
        sys.stdout.flush()
        sys.stderr.flush()
        # Everything the parent holds now lives as long as it: spare the garbage collector from it
        # here, and never let a forked process collect (and close the files of) the parent's objects.
        gc.freeze()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the forked grading process
            _forked_child(in_r, out_w, log_fd)
        os.close(in_r)
        os.close(out_w)
        return _Forked(pid, os.fdopen(in_w, "wb", buffering=0), os.fdopen(out_r, "rb", buffering=0))

    def _spawn(self, fork: bool = False) -> _Child:
        self._spawned += 1
        proc: subprocess.Popen[bytes] | _Forked
        if fork:
            proc = self._fork()
        else:
            proc = subprocess.Popen(
                [sys.executable, "-m", "grader.batch.pool"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._log if self._log is not None else subprocess.DEVNULL,
                env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"},
            )
        child = _Child(proc, self._spawned, outbuf=bytearray(self._hello))
        # before it reads its first line (the hello), so it forks its fork-server already pinned
        child.cpu = self._pin(proc.pid)
        os.set_blocking(child.stdout.fileno(), False)
        os.set_blocking(child.stdin.fileno(), False)
        self._sel.register(child.stdout, selectors.EVENT_READ, child)
        self._children.append(child)
        self._flush(child)
        return child

    def _pin(self, pid: int) -> int | None:
        """Keep a new grading process (and what it starts) on one CPU, the one fewest others use.

        A worker's outputs are read by its grading process while they are still in that core's
        caches, and no process of a job moves between cores: ~4% less wall time for a class of
        200 on two cores. Where affinity cannot be set (not Linux), the scheduler decides.
        """
        if not hasattr(os, "sched_setaffinity"):
            return None
        try:
            allowed = sorted(os.sched_getaffinity(0))
            used = [c.cpu for c in self._children if c.cpu is not None and c.proc.poll() is None]
            cpu = min(allowed, key=used.count)  # the first of the least used
            os.sched_setaffinity(pid, {cpu})
        except (OSError, ValueError):
            return None
        return cpu

    def launch(self) -> None:
        """Start every grading process without waiting for them (:meth:`start` waits).

        Call it as early as possible, while the parent holds nothing of the class: with ``fork``
        (Linux) the processes are then forked from this one, torch and the grader already imported.
        """
        if self._children:
            return
        fork = self._can_fork()
        for _ in range(self.jobs):
            self._spawn(fork=fork)

    def start(self) -> list[tuple[str, ...]]:
        """Start every grading process and wait until each has built its plan; their isolation layers."""
        self.launch()
        deadline = time.monotonic() + 600
        while not all(c.ready for c in self._children):
            if time.monotonic() > deadline:
                raise PoolError("the grading processes did not start within 10 minutes")
            for child, msg in self._poll(1.0):
                if msg is None:
                    raise PoolError(
                        f"a grading process exited while starting (exit code {child.proc.poll()}); see the batch log"
                    )
                if msg.get("op") == "failed":
                    raise PoolError(f"a grading process could not start: {msg.get('error')}")
        self.layers = [c.layers for c in self._children]
        return self.layers

    def close(self, *, wait: bool = True) -> None:
        """End every grading process: their input closes, then they are waited for.

        ``wait=False`` leaves them to wind down (fork-servers, memory) while the caller writes
        its exports; a later ``close()`` (or ``kill()``) waits for them and reaps them.
        """
        for child in self._children:  # all at once: each then closes its fork-server in parallel
            with contextlib.suppress(OSError):
                child.stdin.close()
        if not wait:
            return
        for child in list(self._children):
            self._stop(child, kill=False)

    def kill(self) -> None:
        for child in list(self._children):
            self._stop(child, kill=True)

    def _stop(self, child: _Child, *, kill: bool) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(child.stdout)
        if child in self._children:
            self._children.remove(child)
        with contextlib.suppress(OSError):
            child.stdin.close()
        if kill:
            with contextlib.suppress(OSError):
                child.proc.kill()
        try:
            child.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait()
        with contextlib.suppress(OSError):
            child.stdout.close()

    # -- io

    def _flush(self, child: _Child) -> None:
        while child.outbuf:
            try:
                n = os.write(child.stdin.fileno(), child.outbuf[: 1 << 16])
            except BlockingIOError:
                break
            except OSError:  # the child is gone; its EOF on stdout will tell
                child.outbuf.clear()
                break
            del child.outbuf[:n]
        self._want_write(child, bool(child.outbuf))

    def _want_write(self, child: _Child, want: bool) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            registered = child.stdin.fileno() in self._sel.get_map()
            if want and not registered:
                self._sel.register(child.stdin, selectors.EVENT_WRITE, child)
            elif not want and registered:
                self._sel.unregister(child.stdin)

    def _poll(self, timeout: float) -> Iterator[tuple[_Child, dict[str, Any] | None]]:
        """Messages from children (``None`` for a child whose output ended)."""
        for key, _mask in self._sel.select(timeout):
            child: _Child = key.data
            if key.fileobj is child.stdin:
                self._flush(child)
                continue
            try:
                data = os.read(child.stdout.fileno(), 1 << 20)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                with contextlib.suppress(KeyError, ValueError):
                    self._sel.unregister(child.stdout)
                with contextlib.suppress(KeyError, ValueError):
                    self._sel.unregister(child.stdin)
                yield child, None
                continue
            child.inbuf += data
            while True:
                end = child.inbuf.find(b"\n")
                if end < 0:
                    break
                line = bytes(child.inbuf[:end])
                del child.inbuf[: end + 1]
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if msg.get("op") == "ready":
                    child.ready = True
                    child.layers = tuple(str(x) for x in msg.get("layers", []))
                    child.pid = int(msg.get("pid", 0))
                yield child, msg

    def _send(self, child: _Child, task: dict[str, Any]) -> None:
        child.outbuf += (json.dumps(task, separators=(",", ":")) + "\n").encode()
        child.inflight.append((int(task["id"]), time.monotonic()))
        self._flush(child)

    # -- running

    def run(self, tasks: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Grade ``tasks`` (each ``{"id": int, "submission": {...}}``); yield results as they finish.

        A result is ``{"id", "report", "seconds", "cpu_seconds"}`` or ``{"id", "error"}`` when the
        grader itself failed on that task (its process died twice, or it got stuck).
        """
        source = iter(tasks)
        exhausted = False
        by_id: dict[int, dict[str, Any]] = {}
        attempts: dict[int, int] = {}
        retry: deque[dict[str, Any]] = deque()
        while True:
            # fill every ready child's queue
            for child in list(self._children):
                while child.ready and len(child.inflight) < self.queue_per_job:
                    if retry:
                        task = retry.popleft()
                    elif not exhausted:
                        try:
                            task = next(source)
                        except StopIteration:
                            exhausted = True
                            break
                        by_id[int(task["id"])] = task
                    else:
                        break
                    self._send(child, task)
            if exhausted and not retry and not by_id:
                return
            for child, msg in self._poll(1.0):
                if msg is None:
                    if not child.ready:
                        raise PoolError(
                            f"a grading process exited while starting (exit code {child.proc.poll()}); "
                            "see batch.log"
                        )
                    yield from self._lost(child, "its grading process exited", by_id, attempts, retry)
                    continue
                if msg.get("op") == "failed":
                    raise PoolError(f"a grading process could not start: {msg.get('error')}")
                if msg.get("op") != "result":
                    continue
                tid = int(msg["id"])
                child.inflight = deque(x for x in child.inflight if x[0] != tid)
                if child.inflight:  # the next one starts now: its clock too
                    child.inflight[0] = (child.inflight[0][0], time.monotonic())
                if by_id.pop(tid, None) is not None:
                    yield {k: v for k, v in msg.items() if k != "op"}
            now = time.monotonic()
            for child in list(self._children):
                if child.inflight and now - child.inflight[0][1] > self.stuck_after:
                    yield from self._lost(child, "its grading process got stuck", by_id, attempts, retry)

    def _lost(
        self,
        child: _Child,
        why: str,
        by_id: dict[int, dict[str, Any]],
        attempts: dict[int, int],
        retry: deque[dict[str, Any]],
    ) -> Iterator[dict[str, Any]]:
        """A grading process died or hung: retry its tasks (the one being graded at most twice in
        all) and start a replacement, which takes work once it says it is ready."""
        self._stop(child, kill=True)
        self.restarts += 1
        for n, (tid, _) in enumerate(child.inflight):
            task = by_id.get(tid)
            if task is None:
                continue
            if n == 0:  # the one being graded when it happened
                attempts[tid] = attempts.get(tid, 0) + 1
                if attempts[tid] >= MAX_ATTEMPTS:
                    by_id.pop(tid)
                    yield {"id": tid, "error": f"internal grader error: {why} while grading this submission"}
                    continue
            retry.append(task)
        child.inflight.clear()
        self._spawn()


if __name__ == "__main__":  # pragma: no cover - runs in the grading process
    child_main()
