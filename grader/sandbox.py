"""Worker lifecycle: a fork-server (zygote) that imported torch once, one isolated worker per submission.

Parent (trusted: builds cases, holds references and secrets, judges)
  └─ zygote   (imported torch + the runner; holds NO secret; forks on request)
       └─ worker (setsid, capped output, clean env, temp cwd, limits/namespaces/seccomp, runs student code)

The zygote is forked from the parent right after ``import torch`` when the parent holds nothing
secret (the student's ``grade``), or spawned as a fresh interpreter with a scrubbed environment
(batch grading, hidden seeds, notebooks). Control messages travel over a SOCK_SEQPACKET socket
with the worker's file descriptors attached (SCM_RIGHTS).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import os
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NoReturn

from grader import memory, probes, wire

ENV_ALLOWLIST = ("LANG", "LC_ALL", "TZ")
SECRET_ENV = ("IMGCLASS_HIDDEN_SEED",)
CTRL_BUF = 1 << 16
MAX_WORKER_BYTES = 512 << 20
"""Results one worker may send in all (each reply is capped at wire.MAX_REPLY_BLOB_BYTES too)."""


#: Exit codes of a worker whose own loop failed (not the student's sys.exit codes, we hope).
EXIT_WORKER_FAILED = 70
EXIT_OUT_OF_MEMORY = 71


class SandboxError(Exception):
    """The sandbox itself failed (not the student's code)."""


class WorkerTimeout(Exception):
    """The worker did not answer in time."""


class WorkerGone(Exception):
    """The worker's connection closed (it exited, crashed or was killed)."""


# ----------------------------------------------------------------------------- exit statuses


@dataclass(frozen=True)
class ExitInfo:
    """How a worker ended."""

    exitcode: int | None = None
    signal: int | None = None
    killed: bool = False  #: the grader killed it (timeout)

    def describe(self) -> str:
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = f"signal {self.signal}"
            extra = {
                "SIGSEGV": " (segmentation fault)",
                "SIGBUS": " (bus error)",
                "SIGABRT": " (abort)",
                "SIGXCPU": " (CPU time limit)",
                "SIGKILL": "",
            }.get(name, "")
            return f"the process was killed by {name}{extra}"
        if self.exitcode == EXIT_OUT_OF_MEMORY:
            return "the worker ran out of memory (MemoryError: does your code keep growing a global?)"
        if self.exitcode == EXIT_WORKER_FAILED:
            return "the worker stopped with an error outside your function (exit 70)"
        if self.exitcode is not None:
            return f"the process exited with code {self.exitcode} (sys.exit / os._exit in your code?)"
        return "the process ended"


def _status_dict(
    status: int, killed: bool, cpu_used: float = 0.0, pid1_cpu_limit: int | None = None
) -> dict[str, Any]:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        isolation = sys.modules.get("grader.isolation")
        if pid1_cpu_limit is not None and isolation is not None:
            sig = isolation.reported_signal(sig, cpu_used, pid1_cpu_limit)
        return {"signal": sig, "killed": killed}
    return {"exitcode": os.WEXITSTATUS(status), "killed": killed}


# ----------------------------------------------------------------------------- inside the worker


def _set_pdeathsig() -> None:
    if sys.platform != "linux":
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def _basic_limits(policy: dict[str, Any]) -> tuple[str, ...]:
    """rlimits only: the fallback where the isolation module is unavailable."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return ()
    limits = policy.get("limits", {})
    done = []
    for name, key in (
        ("RLIMIT_CPU", "cpu_seconds"),
        ("RLIMIT_FSIZE", "file_size_bytes"),
        ("RLIMIT_NOFILE", "open_files"),
    ):
        value = limits.get(key)
        if value is not None and hasattr(resource, name):
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(getattr(resource, name), (int(value), int(value)))
                done.append(name)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return ("rlimits",) if done else ()


def _isolate(policy: dict[str, Any], *, pid1: bool = False, alive_fd: int = -1) -> tuple[str, ...]:
    """Apply the isolation layers (grader.isolation) or, where unavailable, rlimits only.

    ``isolate: False`` (``Settings.isolation = "minimal"``) keeps rlimits and the scrubbed
    environment block but skips namespaces, the uid change and seccomp. ``pid1``: the fork-server
    forked this worker as pid 1 of a new pid namespace (``alive_fd``: see isolation.enter).
    """
    isolation = sys.modules.get("grader.isolation")
    if isolation is None:
        return _basic_limits(policy)
    known = {f.name for f in dataclasses.fields(isolation.Limits)}
    limits = isolation.Limits(**{k: v for k, v in policy.get("limits", {}).items() if k in known})
    if not policy.get("isolate", True):
        bare = isolation.Policy(limits=limits, namespaces=False, seccomp=False, drop_uid=None)
        return tuple(isolation.enter(bare, pid1=pid1, alive_fd=alive_fd))
    return tuple(isolation.enter(isolation.Policy(limits=limits), pid1=pid1, alive_fd=alive_fd))


def _worker_main(
    sock_fd: int, out_fd: int, tmpdir: str, policy: dict[str, Any], *, pid1: bool = False, alive_fd: int = -1
) -> NoReturn:
    """Runs in the freshly forked worker: set up the process, isolate it, then serve the parent."""
    try:
        memory.take_worker_heap()
        os.setsid()
        _set_pdeathsig()
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        keep = sorted({0, 1, 2, sock_fd} | ({alive_fd} if pid1 and alive_fd >= 0 else set()))
        low = 3
        for fd in keep:
            if fd >= low:
                os.closerange(low, fd)
                low = fd + 1
        os.closerange(low, 1 << 16)
        env = {k: os.environ[k] for k in ENV_ALLOWLIST if k in os.environ}
        os.environ.clear()
        os.environ.update(env)
        os.environ.update({"HOME": tmpdir, "TMPDIR": tmpdir, "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
        os.chdir(tmpdir)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        layers = ("process", *_isolate(policy, pid1=pid1, alive_fd=alive_fd if pid1 else -1))
        here = os.getcwd()  # isolation may have moved the worker into a new root
        os.environ.update({"HOME": here, "TMPDIR": here, "MPLCONFIGDIR": here})
        from grader import runner

        sock = socket.socket(fileno=sock_fd)
    except BaseException as e:
        with contextlib.suppress(BaseException):
            wire.send_frame(
                socket.socket(fileno=sock_fd), {"op": "setup-failed", "error": f"{type(e).__name__}: {e}"}
            )
        os._exit(EXIT_WORKER_FAILED)
    try:
        isolation = sys.modules.get("grader.isolation")
        runner.serve(sock, layers, getattr(isolation, "NS_LAST_PID_FD", -1))
    except MemoryError:
        os._exit(EXIT_OUT_OF_MEMORY)
    os._exit(EXIT_WORKER_FAILED)  # pragma: no cover - serve() never returns


# ----------------------------------------------------------------------------- the zygote


def _preimport() -> None:
    """Import what workers need before forking them (after isolation some paths may be hidden)."""
    import torch

    torch.set_num_threads(1)
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    # torch reads /proc/cpuinfo the first time it picks a kernel for this CPU: do it here, since
    # workers have no /proc (and would print a warning into the student's output)
    torch.backends.cpu.get_cpu_capability()
    torch.ones(4).exp().sum()
    import collections  # noqa: F401
    import fractions  # noqa: F401
    import functools  # noqa: F401
    import itertools  # noqa: F401
    import math  # noqa: F401
    import pathlib  # noqa: F401
    import random  # noqa: F401
    import re  # noqa: F401
    import string  # noqa: F401
    import typing  # noqa: F401

    import numpy  # noqa: F401
    import torch.nn
    import torch.nn.functional

    import grader.runner

    grader.runner.install_tripwires()  # only in the fork-server and its workers, never in the parent
    # torch's code can no longer be made writable here or in any worker: the kernel probes'
    # breakpoints stay where they are (grader.probes)
    probes.seal_code()
    with contextlib.suppress(ImportError):
        import grader.isolation

        grader.isolation.prepare()


def _become_subreaper() -> None:
    """Adopt orphaned descendants (PR_SET_CHILD_SUBREAPER), so that a process a student detached
    from its worker (setsid, double fork) becomes our child and can be killed (see _reap_strays).
    Inside a pid namespace nothing escapes anyway; this covers the fallback without namespaces."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_child_subreaper = 36
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0)


def _child_pids() -> set[int]:
    """This process's children, from /proc (Linux); empty where that is not available."""
    pids: set[int] = set()
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return pids
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/children", encoding="ascii") as f:
                pids.update(int(p) for p in f.read().split())
        except (OSError, ValueError):
            continue
    return pids


def _reap_strays(children: dict[int, str]) -> int:
    """Kill and reap every child that is not a live worker: processes adopted as a subreaper."""
    killed = 0
    for _ in range(64):  # killing a stray hands us its own children: a few rounds at most
        strays = _child_pids() - set(children)
        if not strays:
            break
        for pid in strays:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, 0)
            killed += 1
    return killed


def zygote_main(ctrl: socket.socket) -> NoReturn:
    """The fork-server loop. Never returns."""
    children: dict[int, str] = {}
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _set_pdeathsig()
        _become_subreaper()
        _preimport()
        ctrl.send(json.dumps({"op": "ready"}).encode())
    except BaseException as e:
        with contextlib.suppress(OSError):
            ctrl.send(json.dumps({"op": "failed", "error": f"{type(e).__name__}: {e}"}).encode())
        os._exit(1)
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(ctrl, CTRL_BUF, 4)
        except OSError:
            data, fds = b"", []
        if not data:
            for pid in list(children):
                _kill_and_reap(pid, children)
            _reap_strays(children)
            os._exit(0)
        try:
            msg = json.loads(data)
            reply = _zygote_op(msg, fds, children, ctrl)
        except Exception as e:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            reply = {"error": f"{type(e).__name__}: {e}"}
        _reap_strays(children)
        ctrl.send(json.dumps(reply).encode())


#: Workers forked as pid 1 of their own pid namespace -> their CPU-seconds limit (see _status_dict).
_pid1_cpu_limits: dict[int, int] = {}
#: (read end, write end) of a pipe only the fork-server writes to: a worker forked as pid 1 keeps
#: the read end, where EOF means the fork-server died (see isolation.enter's alive_fd).
_alive_pipe: tuple[int, int] | None = None


def _forget(pid: int, children: dict[int, str]) -> None:
    _pid1_cpu_limits.pop(pid, None)
    shutil.rmtree(children.pop(pid, ""), ignore_errors=True)


def _ended(pid: int, status: int, usage: Any, killed: bool) -> dict[str, Any]:
    cpu = usage.ru_utime + usage.ru_stime
    return _status_dict(status, killed=killed, cpu_used=cpu, pid1_cpu_limit=_pid1_cpu_limits.get(pid))


def _kill_and_reap(pid: int, children: dict[int, str]) -> dict[str, Any]:
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    try:
        _, status, usage = os.wait4(pid, 0)
        info = _ended(pid, status, usage, killed=True)
    except ChildProcessError:
        info = {"killed": True}
    _forget(pid, children)
    return info


def _fork_worker(policy: dict[str, Any]) -> tuple[int, int]:
    """Fork a worker: (pid, alive fd) — with an alive fd (>= 0), the child is pid 1 of a new pid
    namespace (root: one fork instead of two, see isolation.fork_into_pid_namespace)."""
    global _alive_pipe
    isolation = sys.modules.get("grader.isolation")
    if policy.get("isolate", True) and isolation is not None:
        if _alive_pipe is None:
            _alive_pipe = os.pipe()
        pid = isolation.fork_into_pid_namespace()
        if pid is not None:
            return pid, _alive_pipe[0]
    return os.fork(), -1


def _zygote_op(
    msg: dict[str, Any], fds: list[int], children: dict[int, str], ctrl: socket.socket
) -> dict[str, Any]:
    op = msg.get("op")
    if op == "spawn":
        tmpdir = tempfile.mkdtemp(prefix="imgclass-w-")
        os.chmod(tmpdir, 0o777)
        sys.stdout.flush()
        sys.stderr.flush()
        # Objects that exist now are never collected in the worker: its garbage collector does not
        # walk (and so does not copy, page by page) the memory it shares with the fork-server.
        gc.freeze()
        policy = msg.get("policy", {})
        pid, alive_fd = _fork_worker(policy)
        if pid == 0:
            try:
                ctrl.close()
                _worker_main(fds[0], fds[1], tmpdir, policy, pid1=alive_fd >= 0, alive_fd=alive_fd)
            finally:
                os._exit(EXIT_WORKER_FAILED)
        for fd in fds:
            os.close(fd)
        children[pid] = tmpdir
        if alive_fd >= 0:
            _pid1_cpu_limits[pid] = int(policy.get("limits", {}).get("cpu_seconds", 60))
        return {"pid": pid}
    if op == "kill":
        return _kill_and_reap(int(msg["pid"]), children)
    if op == "wait":
        pid, deadline = int(msg["pid"]), time.monotonic() + float(msg.get("timeout", 1.0))
        while time.monotonic() < deadline:
            try:
                done, status, usage = os.wait4(pid, os.WNOHANG)
            except ChildProcessError:
                _forget(pid, children)
                return {}
            if done:
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)  # leftovers in its process group
                info = _ended(pid, status, usage, killed=False)
                _forget(pid, children)
                return info
            time.sleep(0.002)
        return _kill_and_reap(pid, children)
    if op == "preload":
        return _preload(fds)
    if op == "huge-pages":
        moved, reserved = memory.prepare_fork_server()
        return {"mib": moved, "reserved_mib": reserved}
    if op == "ping":
        return {"pong": True, "children": len(children)}
    raise ValueError(f"unknown op {op!r}")


def _preload(fds: list[int]) -> dict[str, Any]:
    """Read a plan's inputs (frames until EOF) and decode them once, for every later worker."""
    from grader import runner

    stream = socket.socket(fileno=fds[0])
    for fd in fds[1:]:
        os.close(fd)
    count = 0
    try:
        stream.settimeout(120)
        decoder = wire.FrameDecoder(max_total=1 << 31)
        while chunk := stream.recv(1 << 20):
            for header, blobs in decoder.feed(chunk):
                runner.preload(str(header["key"]), str(header["exercise"]), header["cases"], blobs)
                count += 1
    finally:
        stream.close()
    return {"exercises": count}


def _spawned_zygote_entry() -> NoReturn:  # pragma: no cover - runs in the spawned interpreter
    fd = int(sys.argv[1])
    zygote_main(socket.socket(fileno=fd))


# ----------------------------------------------------------------------------- parent side


def clean_env() -> dict[str, str]:
    """The environment a spawned zygote gets: no secrets, no tokens, no instructor paths."""
    env = {k: os.environ[k] for k in ENV_ALLOWLIST if k in os.environ}
    env["PATH"] = "/usr/bin:/bin"
    env["OMP_NUM_THREADS"] = "1"
    for key in ("PYTHONPATH",):  # the grader package must stay importable in a source checkout
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def parent_has_secrets() -> bool:
    return any(k in os.environ for k in SECRET_ENV)


class Zygote:
    """Handle on a running fork-server."""

    def __init__(
        self, ctrl: socket.socket, pid: int, proc: subprocess.Popen[bytes] | None, mode: str
    ) -> None:
        self._ctrl = ctrl
        self.pid = pid
        self._proc = proc
        self.mode = mode
        self._lock = threading.Lock()
        self._ready = False
        self._closed = False
        #: counts the forbidden ops' kernels run in this fork-server's workers (grader.probes);
        #: None where the machine does not allow it (the report's layers then lack kernel-probes)
        self.counter: probes.KernelCounter | None = None

    def _start_probes(self) -> None:
        try:
            counter = probes.KernelCounter.start()
        except probes.ProbeError:
            return
        try:
            counter.adopt(self.pid)  # before it forks any worker: every worker is counted
        except OSError:
            counter.close()
            return
        self.counter = counter

    @classmethod
    def start(cls, *, mode: str = "auto", kernel_probes: bool = True) -> Zygote:
        """Start a zygote: ``fork`` (fast, parent must hold no secret), ``spawn``, or ``auto``.

        With ``kernel_probes`` (and where the machine allows it, see :mod:`grader.probes`) the
        forbidden ops' kernels run by its workers are counted from this process.
        """
        zygote = cls._launch(mode)
        if kernel_probes:
            zygote._start_probes()
        return zygote

    @classmethod
    def _launch(cls, mode: str) -> Zygote:
        if mode == "auto":
            mode = (
                "fork"
                if (hasattr(os, "fork") and sys.platform == "linux" and not parent_has_secrets())
                else "spawn"
            )
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        if mode == "fork":
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                try:
                    parent.close()
                    null = os.open(os.devnull, os.O_RDWR)
                    os.dup2(null, 0)
                    zygote_main(child)
                finally:
                    os._exit(1)
            child.close()
            return cls(parent, pid, None, "fork")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-P",  # no current directory on sys.path: nothing a worker left in /tmp is imported
                "-c",
                "from grader.sandbox import _spawned_zygote_entry; _spawned_zygote_entry()",
                str(child.fileno()),
            ],
            pass_fds=(child.fileno(),),
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=tempfile.gettempdir(),
        )
        child.close()
        return cls(parent, proc.pid, proc, "spawn")

    def _wait_ready(self) -> None:
        if self._ready:
            return
        data = self._ctrl.recv(CTRL_BUF)
        msg = json.loads(data) if data else {"op": "failed", "error": "it exited"}
        if msg.get("op") != "ready":
            raise SandboxError(f"the grading worker could not start: {msg.get('error')}")
        self._ready = True

    def request(self, msg: dict[str, Any], fds: list[int] | None = None) -> dict[str, Any]:
        with self._lock:
            if self._closed:
                raise SandboxError("the fork-server is closed")
            self._wait_ready()
            data = json.dumps(msg).encode()
            try:
                if fds:
                    socket.send_fds(self._ctrl, [data], fds)
                else:
                    self._ctrl.send(data)
                reply = self._ctrl.recv(CTRL_BUF)
            except OSError as e:
                raise SandboxError(f"the fork-server went away: {e}") from None
            if not reply:
                raise SandboxError("the fork-server went away")
            out: dict[str, Any] = json.loads(reply)
            if "error" in out:
                raise SandboxError(f"the fork-server failed: {out['error']}")
            return out

    def preload(self, key: str, exercises: list[tuple[str, list[dict[str, Any]], list[bytes]]]) -> int:
        """Hand the fork-server a plan's INPUTS (never its expected outputs), decoded there once and
        inherited by every worker, so each submission no longer receives them over its socket."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with self._lock:
            if self._closed:
                raise SandboxError("the fork-server is closed")
            self._wait_ready()
            try:
                socket.send_fds(self._ctrl, [json.dumps({"op": "preload"}).encode()], [theirs.fileno()])
                theirs.close()
                for exercise, cases, blobs in exercises:
                    ours.sendall(wire.pack_frame({"key": key, "exercise": exercise, "cases": cases}, blobs))
                ours.close()
                reply = self._ctrl.recv(CTRL_BUF)
            except OSError as e:
                raise SandboxError(f"the fork-server went away: {e}") from None
        out = json.loads(reply) if reply else {"error": "no reply"}
        if "error" in out:
            raise SandboxError(f"the fork-server could not take the inputs: {out['error']}")
        return int(out["exercises"])

    def huge_pages(self) -> int:
        """Have the fork-server move its memory into huge pages and set aside a fresh heap for its
        workers (:mod:`grader.memory`); MiB moved.

        Worth it before many more workers (a batch), not for one submission."""
        return int(self.request({"op": "huge-pages"}).get("mib", 0))

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._ctrl.close()
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        else:
            with contextlib.suppress(ChildProcessError):
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    done, _ = os.waitpid(self.pid, os.WNOHANG)
                    if done:
                        break
                    time.sleep(0.005)
                else:
                    os.kill(self.pid, signal.SIGKILL)
                    os.waitpid(self.pid, 0)
        if self.counter is not None:  # its cgroup is empty now: remove it with the probes
            self.counter.close()

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class OutputCapture:
    """Keeps the first ``limit`` bytes of what the student printed and counts the rest."""

    limit: int = 64 * 1024
    kept: bytearray = field(default_factory=bytearray)
    total: int = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self.limit - len(self.kept)
        if room > 0:
            self.kept += data[:room]

    def text(self) -> str:
        return bytes(self.kept).decode("utf-8", errors="replace")


def _large_send_buffer(sock: socket.socket, size: int = 8 << 20) -> None:
    """Raise a socket's send buffer (beyond net.core.wmem_max where we may: root)."""
    force = getattr(socket, "SO_SNDBUFFORCE", None)
    with contextlib.suppress(OSError):
        if force is not None and os.geteuid() == 0:
            sock.setsockopt(socket.SOL_SOCKET, force, size)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


class Worker:
    """One worker process and the parent's end of its socket and output pipe."""

    def __init__(self, zygote: Zygote, policy: dict[str, Any], output: OutputCapture) -> None:
        self._zygote = zygote
        self.output = output
        self.sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        _large_send_buffer(child)  # results of several MB arrive in a few wake-ups, not hundreds
        r, w = os.pipe()
        try:
            self.pid = int(zygote.request({"op": "spawn", "policy": policy}, [child.fileno(), w])["pid"])
        except BaseException:
            self.sock.close()
            os.close(r)
            raise
        finally:
            child.close()
            os.close(w)
        self._out = r
        self.sock.setblocking(False)
        os.set_blocking(r, False)
        self._decoder = wire.FrameDecoder(max_total=wire.MAX_REPLY_BLOB_BYTES)
        self._received = 0
        # Sent with the first request (before any student code runs) and required on every reply
        # after the hello: bytes a student writes into the connection are never taken for a reply.
        self.token = secrets.token_hex(16)
        self._token_sent = False
        self._greeted = False
        self._pending: deque[tuple[dict[str, Any], list[bytes]]] = deque()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.sock, selectors.EVENT_READ, "sock")
        self._sel.register(r, selectors.EVENT_READ, "out")
        self.exit: ExitInfo | None = None
        self._exit_requested = False
        self.layers: tuple[str, ...] = ()
        #: hits so far of the probed ops' kernels in the fork-server's cgroup, or None (no probes)
        self.probe = zygote.counter.read if zygote.counter is not None else None

    # -- io

    def _drain_output(self) -> bool:
        """Read what is available on the output pipe; False at EOF."""
        try:
            data = os.read(self._out, 1 << 16)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        if not data:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(self._out)
            return False
        self.output.feed(data)
        return True

    def _pump(self, timeout: float, want_write: bytes | None = None) -> int:
        """Wait up to ``timeout`` for events; returns bytes written from ``want_write``."""
        if want_write is not None:
            self._sel.modify(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, "sock")
        try:
            events = self._sel.select(max(0.0, timeout))
        finally:
            if want_write is not None:
                self._sel.modify(self.sock, selectors.EVENT_READ, "sock")
        written = 0
        for key, mask in events:
            if key.data == "out":
                self._drain_output()
            elif mask & selectors.EVENT_READ:
                try:
                    data = self.sock.recv(1 << 20)
                except BlockingIOError:
                    data = None
                except OSError:
                    data = b""
                if data == b"":
                    raise WorkerGone()
                if data:
                    self._received += len(data)
                    if self._received > MAX_WORKER_BYTES:
                        raise wire.ProtocolError(
                            f"the worker sent more than {MAX_WORKER_BYTES >> 20} MiB of results"
                        )
                    self._pending.extend(self._decoder.feed(data))
            if want_write is not None and mask & selectors.EVENT_WRITE:
                try:
                    written += self.sock.send(want_write)
                except BlockingIOError:
                    pass
                except OSError:
                    raise WorkerGone() from None
        return written

    def send(self, header: dict[str, Any], blobs: list[bytes] | tuple[bytes, ...], deadline: float) -> None:
        if not self._token_sent:
            header = {**header, "token": self.token}
            self._token_sent = True
        data = memoryview(wire.pack_frame(header, blobs))
        while data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerTimeout()
            n = self._pump(remaining, bytes(data[: 1 << 20]))
            data = data[n:]

    def recv(self, deadline: float) -> tuple[dict[str, Any], list[bytes]]:
        """The next reply; ProtocolError for one without this worker's token (after the hello)."""
        while not self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerTimeout()
            self._pump(remaining)
        header, blobs = self._pending.popleft()
        if not self._greeted and header.get("op") in ("hello", "setup-failed"):
            self._greeted = True
            return header, blobs
        if not self._token_sent or header.pop("token", None) != self.token:
            raise wire.ProtocolError("a reply without this worker's token")
        return header, blobs

    # -- lifecycle

    def _close_fds(self) -> None:
        with contextlib.suppress(Exception):
            while self._drain_output() and self.output.total < 1 << 30:
                if not self._sel.select(0):
                    break
        self._sel.close()
        self.sock.close()
        with contextlib.suppress(OSError):
            os.close(self._out)

    def kill(self) -> ExitInfo:
        if self.exit is None:
            self.exit = ExitInfo(**self._zygote.request({"op": "kill", "pid": self.pid}))
            self._close_fds()
        return self.exit

    def request_exit(self) -> None:
        """Ask the worker to exit, without waiting for it (``finish`` waits)."""
        if self.exit is None and not self._exit_requested:
            self._exit_requested = True
            with contextlib.suppress(Exception):
                self.send({"op": "exit"}, (), time.monotonic() + 0.5)

    def finish(self) -> ExitInfo:
        """Ask the worker to exit (if not asked yet) and wait until it is gone; kill it if it does not go."""
        if self.exit is None:
            self.request_exit()
            self.exit = ExitInfo(**self._zygote.request({"op": "wait", "pid": self.pid, "timeout": 1.0}))
            self._close_fds()
        return self.exit

    def reap_after_eof(self) -> ExitInfo:
        """The connection closed: collect how the worker ended (killing what is left of it)."""
        if self.exit is None:
            self.exit = ExitInfo(**self._zygote.request({"op": "wait", "pid": self.pid, "timeout": 0.5}))
            self._close_fds()
        return self.exit
