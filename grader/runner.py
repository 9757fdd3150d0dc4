"""Code that runs INSIDE a worker: load the student's sources, call their functions, send back data.

Nothing here judges anything. The worker turns inputs into outputs and reports them as plain data
(tensors as bytes, the rest as JSON); the trusted parent compares, diagnoses and scores. The same
functions serve the fast in-process path used by tests (``grader.testing``).
"""

from __future__ import annotations

import linecache
import os
import socket
import sys
import time
import types
from collections.abc import Callable
from typing import Any, NoReturn

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from grader import wire

# Captured before any student code runs (a student can only break their own worker, but these keep
# honest submissions from being confused by a library they patched).
_Tensor = torch.Tensor
_clone = torch.Tensor.clone
_equal = torch.equal
_isnan = torch.isnan
_monotonic = time.monotonic

STUDENT_PREFIX = "_imgclass_student_"
MAX_MESSAGE = 2000
MAX_OPS = 300


class OpTrace(TorchDispatchMode):
    """Records the names of the aten ops a call runs (how forbidden calls are found, whatever the spelling)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: set[str] = set()

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # no torch._dynamo wrapper: importing it costs ~1 s in every fresh worker

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        try:
            self.ops.add(func.overloadpacket.__name__)
        except Exception:  # pragma: no cover - defensive
            self.ops.add(str(func))
        return func(*args, **(kwargs or {}))


# ----------------------------------------------------------------------------- loading


def load_units(key: str, units: list[dict[str, str]]) -> types.ModuleType:
    """Execute the student's source units, in order, in one fresh module (never via sys.path)."""
    name = STUDENT_PREFIX + "".join(ch if ch.isalnum() else "_" for ch in key)
    module = types.ModuleType(name)
    module.__file__ = units[0]["name"] if units else key
    sys.modules[name] = module
    for unit in units:
        text = unit["text"]
        linecache.cache[unit["name"]] = (len(text), None, text.splitlines(keepends=True), unit["name"])
        code = compile(text, unit["name"], "exec", dont_inherit=True)
        exec(code, module.__dict__)
    return module


# ----------------------------------------------------------------------------- exceptions


def _safe_str(obj: Any) -> str:
    try:
        text = str(obj)
    except BaseException as e:
        return f"(could not show this value: {type(e).__name__})"
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "…"


def describe_exception(exc: BaseException, student_files: set[str]) -> dict[str, Any]:
    """Type, base names, message and the student's own frames (selected by file name)."""
    kind = type(exc)
    try:
        kinds = [c.__name__ for c in kind.__mro__]
    except Exception:
        kinds = ["BaseException"]
    frames: list[list[Any]] = []
    tb = exc.__traceback__
    while tb is not None and len(frames) < 50:
        code = tb.tb_frame.f_code
        if code.co_filename in student_files:
            line = linecache.getline(code.co_filename, tb.tb_lineno).strip()
            frames.append([code.co_filename, tb.tb_lineno, code.co_name, line[:300]])
        tb = tb.tb_next
    if isinstance(exc, SyntaxError) and exc.filename in student_files and exc.lineno:
        frames.append([exc.filename, exc.lineno, "<module>", (exc.text or "").strip()[:300]])
    return {
        "kind": "raised",
        "type": kinds[0] if kinds else "?",
        "kinds": kinds[:20],
        "message": _safe_str(exc),
        "frames": frames[-12:],
    }


# ----------------------------------------------------------------------------- calling


def _snapshot(args: list[Any]) -> list[tuple[int, torch.Tensor]]:
    return [(i, _clone(a).detach()) for i, a in enumerate(args) if type(a) is _Tensor]


def _changed(before: torch.Tensor, after: Any) -> bool:
    try:
        if type(after) is not _Tensor or after.shape != before.shape or after.dtype != before.dtype:
            return True
        a = after.detach()
        if _equal(a, before):
            return False
        if a.is_floating_point():
            return not bool(((a == before) | (_isnan(a) & _isnan(before))).all())
        return True
    except Exception:
        return True


def call_case(
    fn: Callable[..., Any], case: dict[str, Any], blobs: list[bytes], student_files: set[str]
) -> tuple[dict[str, Any], list[bytes]]:
    """Call ``fn`` on one decoded case; return the result header and its blobs."""
    args = [wire.decode_value(a, blobs, allow_path=True) for a in case["args"]]
    kwargs = {k: wire.decode_value(v, blobs, allow_path=True) for k, v in case["kwargs"].items()}
    grad_wrt = case.get("grad_wrt")
    grad_output = wire.decode_value(case["grad_output"], blobs) if case.get("grad_output") else None
    leaf = None
    if grad_wrt is not None:
        leaf = args[grad_wrt].requires_grad_(True)
    before = _snapshot(args)
    trace = OpTrace()
    out_blobs: list[bytes] = []
    start = _monotonic()
    try:
        with trace:
            value = fn(*args, **kwargs)
    except NotImplementedError:
        result: dict[str, Any] = {"kind": "not_implemented"}
    except BaseException as exc:
        result = describe_exception(exc, student_files)
    else:
        result = {"kind": "returned", "value": wire.encode_value(value, out_blobs)}
        if leaf is not None:
            result["grad"], result["grad_error"] = _gradient(
                value, leaf, grad_output, out_blobs, student_files
            )
        mutated = [i for i, snap in before if _changed(snap, args[i])]
        result["mutated"] = mutated
    elapsed = _monotonic() - start
    ops = sorted(trace.ops)[:MAX_OPS]
    return {
        "op": "case",
        "id": case["id"],
        "result": result,
        "ops": ops,
        "seconds": round(elapsed, 6),
    }, out_blobs


def _gradient(
    value: Any, leaf: torch.Tensor, grad_output: Any, blobs: list[bytes], student_files: set[str]
) -> tuple[Any, str | None]:
    if type(value) is not _Tensor:
        return None, "the result is not a tensor"
    if not value.requires_grad:
        return None, "the result does not require grad (it is not connected to the input)"
    try:
        # (value * g).sum().backward() == value.backward(g), without torch importing sympy
        weighted = value * grad_output if grad_output is not None else value
        weighted.sum().backward()
    except BaseException as exc:
        info = describe_exception(exc, student_files)
        return None, f"backward() raised {info['type']}: {info['message'][:200]}"
    if leaf.grad is None:
        return None, "the input received no gradient"
    return wire.encode_value(leaf.grad.detach(), blobs), None


# ----------------------------------------------------------------------------- serving


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


def serve(sock: socket.socket, layers: tuple[str, ...] = ()) -> NoReturn:
    """The worker's loop: answer load/run requests until told to exit (or the parent goes away)."""
    modules: dict[str, types.ModuleType] = {}
    student_files: set[str] = set()
    wire.send_frame(sock, {"op": "hello", "pid": os.getpid(), "layers": list(layers)})
    while True:
        try:
            header, blobs = wire.recv_frame(sock)
        except BaseException:
            os._exit(0)
        op = header.get("op")
        if op == "exit":
            _flush()
            os._exit(0)
        elif op == "load":
            key = header["key"]
            student_files.update(u["name"] for u in header["units"])
            try:
                modules[key] = load_units(key, header["units"])
                reply: dict[str, Any] = {"op": "loaded", "ok": True}
            except NotImplementedError:
                reply = {"op": "loaded", "ok": False, "error": {"kind": "not_implemented"}}
            except BaseException as exc:
                reply = {"op": "loaded", "ok": False, "error": describe_exception(exc, student_files)}
            _flush()
            wire.send_frame(sock, reply)
        elif op == "run":
            module = modules.get(header["key"])
            fn = getattr(module, header["func"], None) if module is not None else None
            if not callable(fn):
                wire.send_frame(sock, {"op": "missing"})
                continue
            for case in header["cases"]:
                result, out_blobs = call_case(fn, case, blobs, student_files)
                _flush()
                wire.send_frame(sock, result, out_blobs)
            wire.send_frame(sock, {"op": "end"})
