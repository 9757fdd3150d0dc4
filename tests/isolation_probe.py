"""Probe driver for tests/test_isolation.py: a miniature zygote that runs one probe in a worker.

Run as ``python tests/isolation_probe.py SPEC_JSON``. Like the grader's fork-server, it imports
torch (one thread) and pyseccomp, then forks a worker which calls ``setsid()``, sends its
stdout/stderr to a log file, closes every other fd but a socket to this process, cleans
``os.environ`` and changes to a fresh directory, then calls ``isolation.enter()`` and runs the
probe named in the spec. The worker reports JSON messages over the socket; this process prints
one JSON object: the messages, how the worker ended, and the tail of its log.

SPEC keys: ``probe`` (a name in PROBES), ``policy`` (keyword arguments of Policy, with
``limits`` as a dict), ``capabilities`` (fields to override in probe()'s answer), ``sys_path``
(entries to prepend before enter), ``become_uid`` (switch to this uid before enter, to take the
unprivileged path), ``args`` (for the probe), ``listen`` (open a TCP listener on 127.0.0.1),
``pid1`` (fork the worker like the grader's fork-server, with ``fork_into_pid_namespace``, as root).
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import select
import signal
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import pyseccomp  # noqa: E402,F401  (the zygote imports it once, like the grader's)
import torch  # noqa: E402

from grader import isolation  # noqa: E402

torch.set_num_threads(1)
_ = (torch.ones(64, 64) @ torch.ones(64, 64)).sum().item()  # torch has run an op, 1 thread
isolation.prepare()

SECRET = "31337"
Report = Callable[[dict[str, Any]], None]


def _error(exc: BaseException) -> dict[str, Any]:
    return {"type": type(exc).__name__, "errno": getattr(exc, "errno", None), "text": str(exc)}


def _attempt(action: Callable[[], object]) -> dict[str, Any]:
    """Run ``action``; return {"ok": True, "value": ...} or {"ok": False, "error": ...}."""
    try:
        value = action()
    except BaseException as exc:
        return {"ok": False, "error": _error(exc)}
    return {"ok": True, "value": value if isinstance(value, str | int | float | bool | None) else repr(value)}


# --------------------------------------------------------------------------------------------
# probes: each runs inside the isolated worker and returns a JSON-able dict


def probe_basics(args: dict[str, Any], report: Report) -> dict[str, Any]:
    """Python, torch and the stdlib still work; who and where the worker is."""
    import threading

    result: dict[str, Any] = {
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "gid": os.getgid(),
        "groups": os.getgroups(),
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "proc_entries": sorted(os.listdir("/proc")) if os.path.isdir("/proc") else None,
        "hostname": socket.gethostname(),
        "cap_eff": _cap_eff(),
    }
    a = torch.arange(16.0).reshape(4, 4)
    result["matmul"] = (a @ a).sum().item()
    unimported = [m for m in ("fractions", "wave", "colorsys", "tomllib", "graphlib") if m not in sys.modules]
    name = unimported[0]
    module = __import__(name)
    result["stdlib_module"] = {"name": name, "file": module.__file__}
    c_ext = [m for m in ("sqlite3", "_lzma", "_bz2", "_curses") if m not in sys.modules]
    result["c_extension"] = _attempt(lambda: __import__(c_ext[0]).__name__) if c_ext else {"ok": True}

    def threaded_matmul() -> float:
        torch.set_num_threads(2)
        b = torch.ones(300, 300)
        return float((b @ b).sum().item())

    result["torch_two_threads"] = _attempt(threaded_matmul)
    box: list[int] = []
    thread = threading.Thread(target=lambda: box.append(sum(range(1000))))
    thread.start()
    thread.join(10)
    result["python_thread"] = box == [499500]
    got: list[int] = []
    signal.signal(signal.SIGUSR1, lambda signum, frame: got.append(signum))
    result["raise_signal"] = _attempt(lambda: signal.raise_signal(signal.SIGUSR1))
    result["raise_signal_handled"] = got == [signal.SIGUSR1]

    def write_tmp() -> str:
        with open("scratch.txt", "w") as f:
            f.write("hello")
        with open("/tmp/other.txt", "w") as f:
            f.write("x")
        with open("scratch.txt") as f:
            return f.read()

    result["write_cwd_and_tmp"] = _attempt(write_tmp)
    result["dev_null"] = _attempt(lambda: Path("/dev/null").write_text("x"))
    result["urandom"] = _attempt(lambda: len(os.urandom(16)))
    return result


def _cap_eff() -> int:
    """The effective capability set, from capget(2) (the worker has no /proc)."""
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()  # two {effective, permitted, inheritable} structs
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.capget(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    return data[0] | (data[3] << 32)


def _env_span() -> list[int]:
    """Where this process's exec-time environment block lies (fields 50 and 51 of proc(5))."""
    stat = Path("/proc/self/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return [int(fields[47]), int(fields[48])]


def probe_network(args: dict[str, Any], report: Report) -> dict[str, Any]:
    """Connecting to a listener on the host's loopback must fail."""

    def connect() -> str:
        # Not create_connection: its getaddrinfo needs the idna codec, which a worker without
        # the mount layer may be unable to import (its Python may be out of its uid's reach).
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(("127.0.0.1", args["port"]))
            return repr(s)

    return {"connect": _attempt(connect)}


def probe_files(args: dict[str, Any], report: Report) -> dict[str, Any]:
    """Read what must be hidden and what must be visible; write outside /tmp."""

    def read(path: str) -> Callable[[], str]:
        def action() -> str:
            with open(path) as f:
                return f.read()

        return action

    def write(path: str) -> Callable[[], int]:
        def action() -> int:
            with open(path, "w") as f:
                return f.write("pwned")

        return action

    return {
        "read": {path: _attempt(read(path)) for path in args["read"]},
        "exists": {path: os.path.exists(path) for path in args["exists"]},
        "write": {path: _attempt(write(path)) for path in args["write"]},
        "root_listing": sorted(os.listdir("/")),
    }


def probe_processes(args: dict[str, Any], report: Report) -> dict[str, Any]:
    """No new processes, no exec, no new session, no signals to others, no limit changes."""
    import resource
    import subprocess

    def fork() -> int:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        return pid

    libc = ctypes.CDLL(None, use_errno=True)

    def clear_pdeathsig() -> int:
        if libc.prctl(1, 0, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG, 0)")
        return 0

    return {
        "fork": _attempt(fork),
        "subprocess": _attempt(lambda: subprocess.run(["/bin/true"], check=False).returncode),
        "posix_spawn": _attempt(lambda: os.posix_spawn("/bin/true", ["true"], {})),
        "execv": _attempt(lambda: os.execv("/bin/true", ["true"])),
        "setsid": _attempt(os.setsid),
        "kill_group": _attempt(lambda: os.kill(0, 0)),
        "clear_pdeathsig": _attempt(clear_pdeathsig),
        "getrlimit": _attempt(lambda: resource.getrlimit(resource.RLIMIT_CPU)[0]),
        "setrlimit": _attempt(lambda: resource.setrlimit(resource.RLIMIT_CPU, (1, 1))),
        "socketpair": _attempt(socket.socketpair),
    }


def probe_environ(args: dict[str, Any], report: Report) -> dict[str, Any]:
    """The zygote's HIDDEN_SEED is nowhere: env, posix.environ, /proc/*/environ, the env block."""
    import posix

    found: list[str] = []
    readable: list[str] = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() or entry == "self":
            path = f"/proc/{entry}/environ"
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            readable.append(path)
            if SECRET.encode() in data:
                found.append(path)
    env_start, env_end = args["env_span"]  # read before isolation: the worker has no /proc
    block = ctypes.string_at(env_start, env_end - env_start) if env_start else b""
    return {
        "proc_environ_with_secret": found,
        "proc_environ_readable": readable,
        "os_environ": SECRET in repr(dict(os.environ)),
        "posix_environ": SECRET.encode() in repr(posix.environ).encode(),
        "env_block_checked": len(block),
        "env_block": SECRET.encode() in block,
        "getenv_path": os.getenv("PATH"),
        "c_getenv_path": _c_getenv("PATH"),
    }


def _c_getenv(name: str) -> str | None:
    getenv = ctypes.CDLL(None).getenv
    getenv.restype = ctypes.c_char_p
    value = getenv(name.encode())
    return None if value is None else value.decode()


def probe_memory(args: dict[str, Any], report: Report) -> dict[str, Any]:
    """A 6 GiB allocation fails with MemoryError; the worker survives it."""
    six = 6 * 1024**3

    def torch_alloc() -> int:
        return torch.empty(six, dtype=torch.uint8).numel()

    return {
        "bytearray": _attempt(lambda: len(bytearray(six))),
        "torch_empty": _attempt(torch_alloc),
        "small_after": _attempt(lambda: len(bytearray(10 * 1024 * 1024))),
    }


def probe_fsize(args: dict[str, Any], report: Report) -> dict[str, Any]:
    """Writing a 100 MB file stops at RLIMIT_FSIZE with EFBIG."""
    written = 0
    chunk = b"x" * (1024 * 1024)
    error: dict[str, Any] | None = None
    try:
        with open("big.bin", "wb", buffering=0) as f:
            while written < 100 * 1000 * 1000:
                written += f.write(chunk)
    except OSError as exc:
        error = _error(exc)
    return {"written": written, "error": error, "size_on_disk": os.path.getsize("big.bin")}


def probe_cpu(args: dict[str, Any], report: Report) -> dict[str, Any]:
    """Spin until RLIMIT_CPU ends the worker (the driver reads the wait status)."""
    report({"spinning": True})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pass
    return {"still_alive_after_120s": True}


def probe_segfault(args: dict[str, Any], report: Report) -> dict[str, Any]:
    """Dereference NULL: the worker dies by SIGSEGV."""
    report({"about_to_crash": True})
    ctypes.string_at(0)
    return {"survived": True}


def probe_daemon(args: dict[str, Any], report: Report) -> dict[str, Any]:
    """Start a setsid() daemon that inherits the report socket, then wait to be killed."""
    pid = os.fork()
    if pid == 0:
        os.setsid()
        time.sleep(args.get("daemon_seconds", 60))  # bounded, in case it does escape
        os._exit(0)
    report({"daemon": pid})
    time.sleep(60)
    return {"not_killed": True}


def probe_hold(args: dict[str, Any], report: Report) -> dict[str, Any]:
    """Report, then wait to be killed: the driver looks at the worker from outside meanwhile."""
    report({"hold": True})
    time.sleep(args.get("hold_seconds", 60))  # bounded, in case the driver does not kill it
    return {"not_killed": True}


PROBES: dict[str, Callable[[dict[str, Any], Report], dict[str, Any]]] = {
    name.removeprefix("probe_"): func for name, func in globals().items() if name.startswith("probe_")
}


# --------------------------------------------------------------------------------------------
# the worker and the zygote side


def _policy(spec: dict[str, Any]) -> isolation.Policy:
    raw = dict(spec.get("policy", {}))
    limits = isolation.Limits(**raw.pop("limits", {}))
    if "readable" in raw:
        raw["readable"] = tuple(raw["readable"])
    return isolation.Policy(limits=limits, **raw)


def _worker(spec: dict[str, Any], sock: int, log_path: str, alive_fd: int = -1) -> None:
    """Set up like the grader's worker, enter the sandbox, run the probe, report, exit.

    ``alive_fd`` >= 0: forked by ``fork_into_pid_namespace`` like the grader's workers (pid 1).
    """

    def report(message: dict[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\n"
        while data:
            data = data[os.write(sock, data) :]

    code = 0
    try:
        os.setsid()
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        keep = sorted({0, 1, 2, sock} | ({alive_fd} if alive_fd >= 0 else set()))
        for low, high in zip(keep, [*keep[1:], 1 << 20]):
            os.closerange(low + 1, high)
        os.environ.clear()
        os.environ.update({"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
        os.chdir(tempfile.mkdtemp(prefix="worker-"))
        for entry in reversed(spec.get("sys_path", [])):
            sys.path.insert(0, entry)
        uid = spec.get("become_uid")
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        spec.setdefault("args", {})["env_span"] = _env_span()
        caps = isolation.probe()
        if "capabilities" in spec:
            caps = dataclasses.replace(caps, **spec["capabilities"])
        layers = isolation.enter(_policy(spec), capabilities=caps, pid1=alive_fd >= 0, alive_fd=alive_fd)
        report({"layers": list(layers)})
        result = PROBES[spec["probe"]](spec.get("args", {}), report)
        report({"result": result})
    except BaseException:
        code = 3
        try:
            report({"error": traceback.format_exc()})
        except OSError:
            pass
    os._exit(code)


def main() -> None:
    spec = json.loads(sys.argv[1])
    out: dict[str, Any] = {"zygote_has_seed": SECRET.encode() in Path("/proc/self/environ").read_bytes()}
    listener = None
    if spec.get("listen"):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        spec.setdefault("args", {})["port"] = listener.getsockname()[1]
    log_dir = tempfile.mkdtemp(prefix="isolation-probe-")
    log_path = os.path.join(log_dir, "worker.log")
    ours, theirs = socket.socketpair()
    alive = os.pipe() if spec.get("pid1") else None
    forked = isolation.fork_into_pid_namespace() if alive else os.fork()
    if forked is None:
        raise SystemExit("fork_into_pid_namespace is not possible here")
    pid = forked
    if pid == 0:
        _worker(spec, theirs.fileno(), log_path, alive[0] if alive else -1)
    theirs.close()

    messages: list[dict[str, Any]] = []
    buffer = b""
    deadline = time.monotonic() + spec.get("timeout", 60)
    killed_at: float | None = None
    eof = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([ours], [], [], 0.2)
        if not ready:
            continue
        chunk = ours.recv(65536)
        if not chunk:
            eof = True
            break
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            message = json.loads(line)
            messages.append(message)
            if "hold" in message and killed_at is None:
                out["worker_net"] = _net_namespace(str(pid))
                with open(f"/proc/{pid}/net/dev") as f:
                    out["worker_interfaces"] = [line.split(":")[0].strip() for line in f.readlines()[2:]]
                with open(f"/proc/{pid}/net/route") as f:
                    out["worker_routes"] = f.readlines()[1:]
                os.kill(pid, signal.SIGKILL)
                killed_at = time.monotonic()
            if "daemon" in message and killed_at is None:
                # The grader's timeout: SIGKILL the worker pid (the supervisor). The daemon holds
                # a copy of the socket, so EOF only comes if it died with the pid namespace.
                os.kill(pid, signal.SIGKILL)
                killed_at = time.monotonic()
                deadline = min(deadline, killed_at + spec.get("eof_timeout", 10))
    if not eof:
        os.kill(pid, signal.SIGKILL)  # no-op if it is already gone
    _, status = os.waitpid(pid, 0)
    out.update(messages=messages, eof=eof, killed_by_driver=killed_at is not None)
    if os.WIFSIGNALED(status):
        out["status"] = {"signaled": os.WTERMSIG(status)}
    else:
        out["status"] = {"exited": os.WEXITSTATUS(status)}
    with open(log_path, errors="replace") as f:
        out["worker_log"] = f.read()[-4000:]
    if alive:
        out["driver_net"] = _net_namespace("self")
        out["next_worker_net"] = _next_worker_net_namespace()
    print(json.dumps(out))


def _net_namespace(pid: str) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def _next_worker_net_namespace() -> int:
    """The network namespace the next worker forked by ``fork_into_pid_namespace`` starts in."""
    read_end, write_end = os.pipe()
    pid = isolation.fork_into_pid_namespace()
    if pid == 0:
        os.write(write_end, str(_net_namespace("self")).encode())
        os._exit(0)
    assert pid is not None
    os.close(write_end)
    os.waitpid(pid, 0)
    return int(os.read(read_end, 64))


if __name__ == "__main__":
    main()
