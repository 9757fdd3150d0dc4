"""Grade one exercise of a function defined in a notebook or a script: ``check(softmax)``.

The function object the student passes is never called or trusted. Its SOURCE is re-created and
graded the way ``grade`` grades a notebook:

* In IPython / Jupyter (the function's module is ``__main__``): the cells this kernel has run, in
  order (``In``), through the same definitions-only filter as notebook submissions
  (:func:`grader.submission.notebook_units`), so helpers, imports and constants from earlier cells
  come along and exploration code does not. Imports of modules the kernel never loaded (they failed
  there too) and imports of the grader itself are left out. A kept statement that raises when re-run
  is left out with the rest of its cell, as in the kernel, and the exercise is graded again.
  A function that no ``def`` in the history defines (``%run script.py``) is read from its file.
* Elsewhere: the file that defines the function (``inspect.getsourcefile``): a module as a whole,
  as ``grade FILE.py`` would; a script (``__main__``) through the definitions-only filter.

Everything trusted — the cases, PyTorch's reference, the comparison, the score and any hidden seed —
lives in a *grading service*: a fresh interpreter this process starts on first use (one per kernel,
in its own session so a kernel interrupt does not reach it), which starts its fork-server before it
reads any course configuration. The kernel, which ran the student's code, only sends source text and
receives the report as JSON; the student's function runs in a sandboxed worker forked from that
fork-server. So a notebook that changed torch's global state (default dtype, grad mode) or patched
the grader in its kernel cannot change how cases are built or judged, and the hidden seed is never
in the kernel's memory nor in any worker.

This module is imported by ``from grader import check``, also inside a worker when ``grade`` runs a
notebook that contains that import, so importing it stays cheap (standard library only).
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import inspect
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from grader.errors import GraderError, UsageError

if TYPE_CHECKING:
    from grader.engine import Plan
    from grader.model import ExerciseResult, Report
    from grader.sandbox import Zygote
    from grader.settings import Settings
    from grader.submission import Unit

#: Path of an instructor's course TOML for ``check`` (and ``grader.nbgrader.check``).
COURSE_CONFIG_ENV = "IMGCLASS_COURSE_CONFIG"
#: Secrets the grading service must not inherit (it forks its fork-server before reading any).
SECRET_ENV = ("IMGCLASS_HIDDEN_SEED",)
#: How long the kernel waits for one answer of the service (start-up included) before giving up.
SERVICE_WAIT = 900.0
#: Statements that raise when re-run are left out and the exercise regraded, at most this often.
MAX_REGRADES = 8

_FRAME = struct.Struct("!Q")
_MAX_FRAME = 256 << 20


# ----------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class Checked:
    """The graded exercise: a one-exercise Report (its output, notes and errors) and views of it."""

    report: Report

    @property
    def result(self) -> ExerciseResult:
        return self.report.exercises[0]

    def text(self, mode: str = "full") -> str:
        """Plain text: ``full`` (the explanation) or ``hidden`` (what the hidden cases added)."""
        return _render("check.txt.j2", self.report, mode)

    def html(self) -> str:
        return _render("check.html.j2", self.report, "full")

    def _repr_html_(self) -> str:
        return self.html()

    def __repr__(self) -> str:
        return self.text()


def _render(template: str, report: Report, mode: str) -> str:
    from grader.render import environment

    return environment().get_template(template).render(report=report.to_dict(), mode=mode).rstrip() + "\n"


# ----------------------------------------------------------------------------- wire (kernel <-> service)


def _send(sock: socket.socket, obj: Any) -> None:
    data = json.dumps(obj).encode()
    sock.sendall(_FRAME.pack(len(data)) + data)


def _read_exact(sock: socket.socket, n: int, deadline: float | None) -> bytes | None:
    chunks: list[bytes] = []
    got = 0
    while got < n:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError()
            sock.settimeout(remaining)
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _recv(sock: socket.socket, deadline: float | None) -> Any:
    """One JSON message; None when the other side closed the connection."""
    head = _read_exact(sock, _FRAME.size, deadline)
    if head is None:
        return None
    (n,) = _FRAME.unpack(head)
    if n > _MAX_FRAME:
        raise ValueError("message too large")
    body = _read_exact(sock, n, deadline)
    return None if body is None else json.loads(body)


# ----------------------------------------------------------------------------- the kernel's side


class _Service:
    """The kernel's handle on its grading service (a child process in its own session)."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the service
        env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-P",  # not the kernel's cwd on sys.path: a student's grader.py there is not ours
                    "-c",
                    "from grader.checker import service_main; service_main()",
                    str(theirs.fileno()),
                ],
                pass_fds=(theirs.fileno(),),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self.log,
                stderr=self.log,
                cwd=tempfile.gettempdir(),
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            self.log.close()
            raise
        finally:
            theirs.close()
        self.sock = ours

    def request(self, msg: dict[str, Any]) -> Any:
        _send(self.sock, msg)
        return _recv(self.sock, time.monotonic() + SERVICE_WAIT)

    def log_tail(self) -> str:
        with contextlib.suppress(OSError, ValueError):
            self.log.seek(0, os.SEEK_END)
            size = self.log.tell()
            self.log.seek(max(0, size - 1500))
            return self.log.read().decode("utf-8", errors="replace").strip()
        return ""

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        with contextlib.suppress(OSError):
            self.log.close()


_service: _Service | None = None
_service_lock = threading.Lock()


def _request(msg: dict[str, Any]) -> dict[str, Any]:
    """Send one request to this process's grading service (started on first use, restarted once)."""
    global _service
    with _service_lock:
        for attempt in (1, 2):
            if _service is None:
                _service = _Service()
            service = _service
            try:
                reply = service.request(msg)
            except KeyboardInterrupt:
                _service = None
                service.kill()
                raise
            except TimeoutError:
                _service = None
                service.kill()
                raise GraderError(f"the grading service did not answer within {SERVICE_WAIT:g} s") from None
            except OSError:
                reply = None
            if isinstance(reply, dict):
                if reply.get("restart"):
                    _service = None
                    service.close()
                return reply
            _service = None
            tail = service.log_tail()
            service.kill()
            if attempt == 2:
                raise GraderError("the grading service stopped unexpectedly" + (f":\n{tail}" if tail else ""))
    raise AssertionError("unreachable")  # pragma: no cover


def shutdown() -> None:
    """Stop this process's grading service (it also stops by itself when this process exits)."""
    global _service
    with _service_lock:
        if _service is not None:
            _service.close()
            _service = None


atexit.register(shutdown)


def _ipython() -> Any:
    if "IPython" not in sys.modules:
        return None
    try:
        from IPython import get_ipython

        return get_ipython()
    except Exception:
        return None


def _is_cell_file(filename: str) -> bool:
    """ipykernel / IPython name cells like /tmp/ipykernel_123/456.py or <ipython-input-3-...>."""
    return filename.startswith("<") or "ipykernel_" in filename


def _history(ip: Any) -> list[tuple[int, str]]:
    inputs = ip.user_ns.get("In")
    if not isinstance(inputs, list):
        inputs = list(getattr(ip.history_manager, "input_hist_parsed", []))
    return [(n, text) for n, text in enumerate(inputs) if n > 0 and isinstance(text, str) and text.strip()]


def _file_payload(path: str, main: bool) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"Cannot read the source of the function from {path}: {e}") from None
    return {"kind": "file", "file": os.path.basename(path), "text": text, "main": main}


def source_payload(fn: Any) -> dict[str, Any]:
    """What the service needs to re-create ``fn`` from source (history cells or a file's text)."""
    if not callable(fn):
        raise UsageError(f"check() needs a function, got {type(fn).__name__}: check(softmax)")
    fn = inspect.unwrap(fn)
    if not (inspect.isfunction(fn) or inspect.isclass(fn)):
        raise UsageError(
            f"check() needs a function defined with `def` (got {type(fn).__name__}): "
            "it is graded from its source"
        )
    module = getattr(fn, "__module__", None)
    code = getattr(fn, "__code__", None)
    filename = code.co_filename if code is not None else ""
    ip = _ipython()
    if module == "__main__" and ip is not None:
        payload: dict[str, Any] = {
            "kind": "history",
            "cells": _history(ip),
            "loaded": sorted(sys.modules),
        }
        if filename and not _is_cell_file(filename) and os.path.isfile(filename):
            payload["fallback"] = _file_payload(filename, main=True)  # e.g. %run script.py
        return payload
    # The file of the module the function belongs to (not its code object's, which can be swapped).
    path = getattr(sys.modules.get(module or ""), "__file__", None)
    if not path:
        try:
            path = inspect.getsourcefile(fn)
        except TypeError:
            path = None
    if not path or _is_cell_file(path) or not os.path.isfile(path):
        raise UsageError(
            f"Cannot find the source of {getattr(fn, '__name__', fn)!r}: check() grades a function "
            "from the notebook or file that defines it"
        )
    return _file_payload(path, main=module == "__main__")


def grade_function(
    exercise: str | None,
    fn: Callable[..., Any],
    *,
    hidden: bool = False,
    config: str | os.PathLike[str] | None = None,
    points: float | None = None,
) -> Checked:
    """Grade ``fn`` as the student's answer to ``exercise`` (an id, a function name, or None for
    ``fn.__name__``) in the grading service; raises GraderError when it cannot be graded."""
    name = exercise if exercise is not None else getattr(fn, "__name__", "")
    msg: dict[str, Any] = {
        "exercise": str(name),
        "func_name": getattr(inspect.unwrap(fn), "__name__", "") if callable(fn) else "",
        "source": source_payload(fn),
        "config": str(Path(config).resolve()) if config else None,
        "hidden": bool(hidden),
        "points": float(points) if points is not None else None,
    }
    if hidden:
        msg["env_seed"] = next((os.environ[k] for k in SECRET_ENV if os.environ.get(k)), None)
    from grader.model import Report

    reply = _request(msg)
    if "error" in reply:
        if reply.get("usage"):
            raise UsageError(str(reply["error"]))
        raise GraderError(str(reply["error"]))
    return Checked(Report.from_dict(reply["report"]))


def _config_from_env() -> str | None:
    return os.environ.get(COURSE_CONFIG_ENV) or None


def check(
    exercise: Any,
    fn: Callable[..., Any] | None = None,
    /,
    *,
    hidden: bool = False,
    config: str | os.PathLike[str] | None = None,
) -> ExerciseResult | None:
    """Grade one function, re-created from its source in a sandboxed worker, and show why.

    ``check(softmax)`` or ``check("losses.softmax", my_softmax)``. In IPython/Jupyter the result is
    displayed (rich HTML in a notebook, plain text in a terminal) and ``None`` is returned, so it is not
    shown twice; elsewhere the explanation is printed and the ExerciseResult returned. Problems that
    stop grading (an unknown exercise, no source) are shown in IPython and raised (GraderError)
    elsewhere. ``config``: a course TOML (default: ``$IMGCLASS_COURSE_CONFIG``).
    """
    ip = _ipython()
    try:
        if fn is None:
            if isinstance(exercise, str):
                short = exercise.rsplit(".", 1)[-1]
                raise UsageError(f"Give the function too: check({exercise!r}, {short})")
            exercise, fn = None, exercise
        checked = grade_function(exercise, fn, hidden=hidden, config=config or _config_from_env())
    except GraderError as e:
        if ip is None:
            raise
        _display_problem(str(e))
        return None
    if ip is not None:
        from IPython.display import display

        display({"text/plain": checked.text(), "text/html": checked.html()}, raw=True)
        return None
    print(checked.text(), end="")
    return checked.result


def _display_problem(message: str) -> None:
    import html

    from IPython.display import display

    display(
        {
            "text/plain": f"check: {message}\n",
            "text/html": '<div class="imgclass-check" style="border-left:4px solid #b00020;'
            f'padding:4px 10px"><b>check:</b> {html.escape(message)}</div>',
        },
        raw=True,
    )


# ----------------------------------------------------------------------------- the service's side


_GRADER_IMPORT = re.compile(r"^grader(\.|$)")


def _prepare_cell(text: str, loaded: set[str]) -> tuple[str | None, list[str]]:
    """Blank imports of the grader and of modules the kernel never loaded (line numbers kept);
    None when the cell does not parse (then it defined nothing in the kernel either)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None, []
    lines = text.splitlines()
    notes: list[str] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Import):
            modules = [a.name for a in stmt.names]
        elif isinstance(stmt, ast.ImportFrom) and not stmt.level and stmt.module:
            modules = [stmt.module]
        else:
            continue
        ours = all(_GRADER_IMPORT.match(m) for m in modules)
        missing = [m for m in modules if m not in loaded and not _GRADER_IMPORT.match(m)]
        if ours or missing:
            for i in range(stmt.lineno - 1, stmt.end_lineno or stmt.lineno):
                lines[i] = ""
            if missing:
                notes.append(f"left out the import of {missing[0]}: it never succeeded in this kernel")
    return "\n".join(lines) + "\n", notes


_CELL_NAME = re.compile(r"\bIn cell (\d+)")


def history_units(cells: Sequence[tuple[int, str]], loaded: set[str]) -> tuple[list[Unit], list[str]]:
    """The kernel's input history as source units named ``In [n]``, definitions only."""
    import nbformat
    from nbformat import v4

    from grader.submission import Unit, notebook_units

    by_number: dict[int, str] = {}
    notes: list[str] = []
    for n, text in cells:
        prepared, cell_notes = _prepare_cell(text, loaded)
        if prepared is None:
            notes.append(f"In [{n}]: left out (it has a syntax error, so it defined nothing)")
            continue
        notes += [f"In [{n}]: {note}" for note in cell_notes]
        by_number[int(n)] = prepared
    last = max(by_number, default=0)
    nb = v4.new_notebook(cells=[v4.new_code_cell(by_number.get(i, "")) for i in range(1, last + 1)])
    units, filter_notes = notebook_units(nbformat.writes(nb), "In")
    renamed = [Unit(_CELL_NAME.sub(r"In [\1]", u.name), u.text) for u in units]
    # Exploration code in a notebook is normal: say nothing about the statements the filter skipped.
    notes += [_CELL_NAME.sub(r"In [\1]", n) for n in filter_notes if not n.startswith("In: ran only")]
    return renamed, notes


def script_units(text: str, file: str) -> tuple[list[Unit], list[str]]:
    """A script's definitions (the notebook filter on one cell), under the script's file name."""
    from nbformat import v4, writes

    from grader.submission import Unit, notebook_units

    units, notes = notebook_units(writes(v4.new_notebook(cells=[v4.new_code_cell(text)])), file)
    return [Unit(file, u.text) for u in units], [n for n in notes if "ran only definitions" not in n]


def _defines(units: Sequence[Unit], name: str) -> bool:
    for u in units:
        with contextlib.suppress(SyntaxError, ValueError):
            for stmt in ast.parse(u.text).body:
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    if stmt.name == name:
                        return True
                elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                    if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                        return True
    return False


def build_units(source: dict[str, Any], func_name: str) -> tuple[list[Unit], list[str], bool]:
    """(units, notes, filtered) from a request's source; ``filtered``: definitions-only source."""
    from grader.submission import Unit

    kind = source.get("kind")
    if kind == "history":
        units, notes = history_units(
            [(int(n), str(t)) for n, t in source.get("cells", [])], set(source.get("loaded", []))
        )
        fallback = source.get("fallback")
        if func_name and not _defines(units, func_name) and isinstance(fallback, dict):
            more, more_notes = build_units(fallback, func_name)[:2]
            notes.append(f"{func_name} is not defined by a cell here: read it from {fallback.get('file')}")
            return units + more, notes + more_notes, True
        return units, notes, True
    if kind == "file":
        file, text = str(source.get("file", "source.py")), str(source.get("text", ""))
        if source.get("main"):
            units, notes = script_units(text, file)
            return units, notes, True
        return [Unit(file, text)], [], False
    raise UsageError("unknown kind of source")


def _failed_statement(report: Report, units: Sequence[Unit]) -> tuple[int, int] | None:
    """(unit index, line) of the top-level statement that raised while the units were re-run."""
    if not report.errors or not report.exercises:
        return None
    first = report.exercises[0].cases[0] if report.exercises[0].cases else None
    if first is None:
        return None
    names = {u.name: i for i, u in enumerate(units)}
    for frame in first.traceback:
        if frame.function == "<module>" and frame.file in names:
            return names[frame.file], frame.line
    return None


def _drop_statement(unit: Unit, line: int) -> tuple[Unit, str]:
    """The unit without the top-level statement at ``line`` (line numbers kept), and that statement."""
    from grader.submission import Unit

    lines = unit.text.splitlines()
    start, end = line, line
    with contextlib.suppress(SyntaxError, ValueError):
        for stmt in ast.parse(unit.text).body:
            if stmt.lineno <= line <= (stmt.end_lineno or stmt.lineno):
                decorators = [d.lineno for d in getattr(stmt, "decorator_list", [])]
                start, end = min([stmt.lineno, *decorators]), stmt.end_lineno or stmt.lineno
    dropped = " ".join(x.strip() for x in lines[start - 1 : end])
    for i in range(start - 1, min(end, len(lines))):
        lines[i] = ""
    return Unit(unit.name, "\n".join(lines) + "\n"), dropped


class _ServiceState:
    def __init__(self, zygote: Zygote) -> None:
        self.zygote = zygote
        self.plans: dict[tuple[str, str], Plan] = {}

    def settings(self, msg: dict[str, Any], exercise_id: str) -> Settings:
        from dataclasses import replace

        from grader.settings import load_course

        settings = load_course(msg.get("config"))
        if msg.get("hidden"):
            if settings.hidden_seed is None and msg.get("env_seed"):
                try:
                    settings = replace(settings, hidden_seed=int(msg["env_seed"]))
                except ValueError:
                    raise UsageError("IMGCLASS_HIDDEN_SEED must be an integer") from None
            if settings.hidden_seed is None:
                raise UsageError(
                    "hidden cases asked for, but no hidden seed is configured: set hidden_seed in the "
                    f"course config (found through ${COURSE_CONFIG_ENV}) or IMGCLASS_HIDDEN_SEED"
                )
        else:
            settings = replace(settings, hidden_seed=None)
        if msg.get("points") is not None:
            settings = replace(settings, points={**settings.points, exercise_id: float(msg["points"])})
        return replace(settings, exercises=(exercise_id,))

    def handle(self, msg: dict[str, Any]) -> dict[str, Any]:
        from grader import specs
        from grader.engine import build_plan, grade
        from grader.sandbox import Worker
        from grader.submission import SINGLE, Source, Submission, Unit

        chosen = specs.select([str(msg.get("exercise", ""))])
        if len(chosen) != 1:
            raise UsageError(
                f"'{msg.get('exercise')}' names {len(chosen)} exercises: give one, e.g. "
                "check('losses.softmax', softmax)"
            )
        exercise = chosen[0]
        settings = self.settings(msg, exercise.id)
        key = (exercise.id, settings.fingerprint())
        if key not in self.plans:
            self.plans[key] = build_plan(chosen, settings)
        plan = self.plans[key]
        func_name = str(msg.get("func_name") or "")
        units, notes, filtered = build_units(msg.get("source") or {}, func_name)
        if func_name.isidentifier() and func_name != exercise.func:
            units.append(Unit("check()", f"{exercise.func} = {func_name}\n"))

        def new_worker(output: Any) -> Worker:
            return Worker(self.zygote, settings.policy(), output)

        name = "notebook" if (msg.get("source") or {}).get("kind") == "history" else "source"
        for _ in range(MAX_REGRADES):
            submission = Submission(name, {}, single=Source(SINGLE, tuple(units)), notes=tuple(notes))
            report, _ = grade(submission, plan, new_worker, settings)
            failed = _failed_statement(report, units) if filtered else None
            if failed is None:
                break
            index, line = failed
            units[index], dropped = _drop_statement(units[index], line)
            why = re.sub(r" \(line \d+\)$", "", report.errors[0].split(" raised ", 1)[-1])
            notes.append(
                f"{units[index].name}, line {line}: left out `{dropped[:80]}`: re-running it raised {why} "
                "(check() re-runs only the definitions, imports and simple constants of your cells)"
            )
        return {"report": report.to_dict()}


def service_main() -> None:  # pragma: no cover - runs in the service process (tested end to end)
    """The grading service: answer grading requests on the socket in argv[1] until it closes."""
    sock = socket.socket(fileno=int(sys.argv[1]))
    try:
        import torch

        torch.set_num_threads(1)
        with contextlib.suppress(ImportError):
            import grader.isolation  # noqa: F401 - the fork-server's workers use it

        from grader.sandbox import SandboxError, Zygote

        # Before any request: nothing secret is in this process yet, so forking is safe.
        state = _ServiceState(Zygote.start(mode="auto"))
    except BaseException as e:
        with contextlib.suppress(OSError):
            _send(
                sock,
                {"error": f"the grading service could not start: {type(e).__name__}: {e}", "restart": True},
            )
        sys.exit(1)
    while True:
        try:
            msg = _recv(sock, None)
        except (OSError, ValueError):
            msg = None
        if not isinstance(msg, dict):
            break
        restart = False
        try:
            reply = state.handle(msg)
        except GraderError as e:
            reply = {"error": str(e), "usage": True}
        except SandboxError as e:
            reply, restart = {"error": f"the grading sandbox failed: {e}", "restart": True}, True
        except Exception as e:
            reply = {"error": f"internal grader error: {type(e).__name__}: {e}"}
        try:
            _send(sock, reply)
        except OSError:
            break
        if restart:
            break
    state.zygote.close()
