"""Code that runs INSIDE a worker: load the student's sources, call their functions, send back data.

Nothing here judges anything. The worker turns inputs into outputs and reports them as plain data
(tensors as bytes, the rest as JSON); the trusted parent compares, diagnoses and scores. The same
functions serve the fast in-process path used by tests (``grader.testing``).

The one thing the parent has to take from the worker on trust is which aten ops a call ran (the
forbidden-call check): the op trace is a ``TorchDispatchMode`` in the student's own interpreter.
So the worker makes the trace tamper-evident, and reports a call it cannot vouch for as
``"untraced"`` (the parent then scores it FORBIDDEN): every reply it sends passes through
functions captured before any student code was loaded; after each call it checks that the trace
still sees ops (a canary), that no other thread ran, that its own code, ``builtins`` and the
trace class are unpatched, that no tracing/profiling hook or extra dispatch mode was left behind,
and, through tripwires the fork-server installs on torch's private switches, that the trace was
not popped or bypassed for a moment. The gradient, the mutation check and the encoding of the
result all run inside the trace, so student hooks that fire there are traced too. Deliberate
introspection (frames, ``gc``, ``ctypes``) can still defeat any check that lives in the same
process; the parent's static scan (``grader.static``) flags such code for review.
"""

from __future__ import annotations

import builtins
import contextlib
import gc
import linecache
import math
import os
import socket
import sys
import time
import types
from collections.abc import Callable
from typing import Any, NoReturn

import numpy
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from grader import wire

# Captured before any student code runs: a student can rebind module attributes (torch.Tensor.clone,
# torch.equal, ...) but not these references, and the C-level methods of torch._C.TensorBase and
# of the socket type cannot be patched at all (immutable types).
_Tensor = torch.Tensor
_TB = torch._C.TensorBase
_clone = _TB.clone
_detach = _TB.detach
_requires_grad_ = _TB.requires_grad_
_item = _TB.item
_is_floating_point = _TB.is_floating_point
_shape_of = vars(_TB)["shape"].__get__
_dtype_of = vars(_TB)["dtype"].__get__
_equal = torch.equal
_is_contiguous = _TB.is_contiguous
_is_complex = _TB.is_complex
_to_numpy = _TB.numpy
_np_equal = numpy.equal
_np_all = numpy.logical_and.reduce  # C all the way (ndarray.all calls numpy._core._methods)
_np_uint8, _np_uint32, _np_uint64 = numpy.uint8, numpy.uint32, numpy.uint64
_eq = torch.eq
_isnan = torch.isnan
_logical_or = torch.logical_or
_logical_and = torch.logical_and
_all = torch.all
_neg = torch.neg
_CANARY = torch.zeros(())
_NoTorchFunction = torch._C.DisableTorchFunction
_push_mode = torch._C._push_on_torch_dispatch_stack
_pop_mode = torch._C._pop_torch_dispatch_stack
_mode_depth = torch._C._len_torch_dispatch_stack
_mode_at = torch._C._get_dispatch_stack_at
_function_mode_depth = torch._C._len_torch_function_stack
_monotonic = time.monotonic
_gettrace, _settrace = sys.gettrace, sys.settrace
_getprofile, _setprofile = sys.getprofile, sys.setprofile
_current_frames = sys._current_frames
_gc_enable, _gc_disable, _gc_isenabled = gc.enable, gc.disable, gc.isenabled
_os_open, _os_read, _os_close, _getpid = os.open, os.read, os.close, os.getpid
_exit = os._exit
contextlib_file = contextlib.__file__

#: Inputs decoded once in the fork-server (grader.sandbox "preload"), inherited by every worker:
#: plan key -> exercise id -> (cases as the parent encodes them, their blobs, blob index -> the
#: pristine tensor, blob index -> a copy of it that calls receive as they are).
Preloaded = tuple[list[dict[str, Any]], list[bytes], dict[int, torch.Tensor], dict[int, torch.Tensor]]
PRELOADED: dict[str, dict[str, Preloaded]] = {}

STUDENT_PREFIX = "_imgclass_student_"
MAX_MESSAGE = 2000
MAX_OPS = 300


def _make_tracer() -> tuple[Any, ...]:
    """The op trace class, its tripwires and the functions call_case uses to read them.

    Their state (what each trace recorded, the watched op names, whether a call is in progress
    and why it cannot be vouched for) lives only in these closures: student code can reach the
    trace object itself (it is on torch's mode stack) but not the record it keeps, short of
    introspecting closures, frames or the garbage collector.
    """
    names: dict[int, str] = {}  # id(OpOverload) -> op name: the watched ops first, others at first sight
    keep: list[Any] = []  # those OpOverload objects (keeps their ids valid)
    records: dict[int, list[Any]] = {}  # id(trace) -> [ops seen, number of ops seen]
    armed: list[int | None] = [None]  # id of the trace of the call in progress
    keys: dict[int, Any] = {}  # id(trace) -> the key arm() returned: only its holder may read or end it
    hits: list[str] = []  # why the call in progress cannot be vouched for
    builtin_function = type(len)
    plain = torch.Tensor

    def hit(why: str) -> None:
        if armed[0] is not None and why not in hits:
            hits.append(why)

    class OpTrace(TorchDispatchMode):
        """Records the names of the aten ops a call runs (how forbidden calls are found, whatever the spelling).

        Watched ops get their names from a map built before any student code ran, so renaming an
        op object does not hide it. The op runs through its C entry point (``func._op``), never
        through Python a student could patch: such code would run while this mode is off the
        stack, that is, untraced.
        """

        def __init__(self) -> None:
            super().__init__()
            records[id(self)] = [set(), 0]

        @property
        def ops(self) -> set[str]:
            record = records.get(id(self))
            return set(record[0]) if record else set()

        @property
        def count(self) -> int:
            record = records.get(id(self))
            return int(record[1]) if record else 0

        @classmethod
        def _should_skip_dynamo(cls) -> bool:
            return False  # no torch._dynamo wrapper: importing it costs ~1 s in every fresh worker

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            name = names.get(id(func))
            if name is None:  # first sight: remember the name (renaming the op later changes nothing)
                try:
                    name = str(func.overloadpacket.__name__)
                except Exception:  # pragma: no cover - defensive
                    name = "?"
                names[id(func)] = name
                keep.append(func)
            record = records.get(id(self))
            if record is not None:
                record[0].add(name)
                record[1] += 1
            if types and (len(types) > 1 or types[0] is not plain):
                hit("a tensor subclass handled torch ops itself (__torch_dispatch__), untraced")
            op = func._op
            if type(op) is not builtin_function:
                hit(f"the torch op {name} was replaced by Python code")
            return op(*args, **kwargs) if kwargs else op(*args)

    def arm(trace: OpTrace) -> Any:
        """Start watching a call traced by ``trace``; returns the key the other functions need."""
        interloper = armed[0] is not None  # only the grader arms, and never twice
        key = object()
        keys[id(trace)] = key
        armed[0] = id(trace)
        hits.clear()
        if interloper:
            hits.append("the grader's op trace was tampered with (armed from outside the grader)")
        return key

    def owner(trace: OpTrace, key: Any) -> bool:
        if keys.get(id(trace)) is key:
            return True
        hit("the grader's op trace was tampered with (its record was asked for without its key)")
        return False

    def disarm(trace: OpTrace, key: Any) -> list[str]:
        if not owner(trace, key):
            return []
        armed[0] = None
        found = list(hits)
        hits.clear()
        return found

    def take(trace: OpTrace, key: Any) -> tuple[set[str], int]:
        if not owner(trace, key):
            return set(), 0
        keys.pop(id(trace), None)
        record = records.pop(id(trace), None) or [set(), 0]
        return set(record[0]), int(record[1])

    def count(trace: OpTrace, key: Any) -> int:
        record = records.get(id(trace)) if owner(trace, key) else None
        return int(record[1]) if record else 0

    def watch(op_names: Any) -> None:
        """Remember the OpOverload objects of these aten ops (before any student code runs)."""
        for name in op_names:
            if not isinstance(name, str):
                continue
            try:
                packet = getattr(torch.ops.aten, name)
                overloads = [getattr(packet, o) for o in packet.overloads()]
            except (AttributeError, RuntimeError):
                continue
            for overload in overloads:
                names[id(overload)] = name
                keep.append(overload)

    installed: list[bool] = [False]

    def install() -> None:
        """Wrap torch's private switches that can hide ops from the trace (call in the fork-server).

        While a call is traced, popping its trace off the dispatch-mode stack (other than to print
        a tensor), excluding the Python dispatch key, or redispatching an op below it marks the
        call as untraced. Outside a call the wrappers only pass through. Every module that
        imported one of the originals by name gets the wrapper too.
        """
        if installed[0]:
            return
        installed[0] = True
        C = torch._C
        python_keys = (C.DispatchKey.Python, C.DispatchKey.PythonTLSSnapshot)
        getframe = sys._getframe
        import importlib

        tensor_str = importlib.import_module("torch._tensor_str")
        python_dispatch = importlib.import_module("torch.utils._python_dispatch")
        printing = tensor_str._str.__code__
        plumbing = (python_dispatch.__file__, contextlib_file)
        pop = C._pop_torch_dispatch_stack
        # print(tensor) switches the trace off while torch formats the tensor; what runs then must
        # be torch's own code, as it was before any student code was loaded.
        printing_path = [
            (torch.__dict__, False),
            (tensor_str.__dict__, False),
            (python_dispatch.__dict__, False),
            (contextlib.__dict__, False),
            (math.__dict__, False),
            (vars(tensor_str._Formatter), True),
            (vars(torch.Tensor), True),
            (vars(contextlib._GeneratorContextManager), True),
        ]
        printing_snapshot: list[tuple[Any, list[tuple[str, Any]], bool]] = []  # filled in at the end

        def printing_intact() -> bool:
            for space, pairs, exact in printing_snapshot:
                if exact and len(space) != len(pairs):
                    return False
                get = space.get
                for name, value in pairs:
                    if get(name, keep) is not value:
                        return False
            return True

        def printing_a_tensor(frame: Any) -> bool:
            while frame is not None and frame.f_code.co_filename in plumbing:
                frame = frame.f_back
            return frame is not None and frame.f_code is printing

        def _pop_torch_dispatch_stack(*args: Any, **kwargs: Any) -> Any:
            mode = pop(*args, **kwargs)
            if armed[0] is not None and id(mode) == armed[0]:
                if not printing_a_tensor(getframe(1)):
                    hit("switched off the op trace (popped it off torch's dispatch-mode stack)")
                elif not printing_intact():
                    hit("switched off the op trace (to print a tensor, with torch's printing code modified)")
            return mode

        def excludes_python(keys: Any = None, *rest: Any, **kw: Any) -> bool:
            try:
                return any(keys.has(k) for k in python_keys)
            except Exception:
                return True

        def key_is_python(key: Any = None, value: Any = True, *rest: Any, **kw: Any) -> bool:
            return key in python_keys and bool(value)

        def always(*args: Any, **kwargs: Any) -> bool:
            return True

        def guard(name: str, original: Any, hides: Callable[..., bool]) -> Any:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                if armed[0] is not None and hides(*args, **kwargs):
                    hit(f"switched off the op trace (torch._C.{name})")
                return original(*args, **kwargs)

            wrapper.__name__ = wrapper.__qualname__ = name
            return wrapper

        wrapped: dict[int, Any] = {id(pop): _pop_torch_dispatch_stack}
        originals: dict[str, Any] = {"_pop_torch_dispatch_stack": pop}
        for name, hides in (
            ("_ExcludeDispatchKeyGuard", excludes_python),
            ("ExcludeDispatchKeyGuard", excludes_python),
            ("_SetExcludeDispatchKeyGuard", key_is_python),
            ("_dispatch_tls_set_dispatch_key_excluded", key_is_python),
            ("_ForceDispatchKeyGuard", always),
            ("_DisableTorchDispatch", always),
        ):
            original = getattr(C, name, None)
            if original is not None:
                originals[name] = original
                wrapped.setdefault(id(original), guard(name, original, hides))
        for name, original in originals.items():
            setattr(C, name, wrapped[id(original)])
        kept = list(originals.values())
        for module in list(sys.modules.values()):
            namespace = getattr(module, "__dict__", None)
            if not isinstance(namespace, dict):
                continue
            for key, value in list(namespace.items()):
                new = wrapped.get(id(value))
                if new is not None and any(value is o for o in kept):
                    namespace[key] = new

        printing_snapshot.extend((space, list(space.items()), exact) for space, exact in printing_path)

        handle = getattr(C, "_DispatchOperatorHandle", None)
        redispatch = getattr(handle, "redispatch_boxed", None)
        if redispatch is not None:

            def redispatch_boxed(self: Any, *args: Any, **kwargs: Any) -> Any:
                hit("switched off the op trace (redispatched an op below it)")
                return redispatch(self, *args, **kwargs)

            try:
                handle.redispatch_boxed = redispatch_boxed  # type: ignore[union-attr]
            except (TypeError, AttributeError):  # pragma: no cover - an immutable type in some torch
                pass

    return OpTrace, arm, disarm, take, count, watch, install


OpTrace, _arm, _disarm, _take, _count, watch_ops, install_tripwires = _make_tracer()


def _python_threads() -> int:
    return len(_current_frames())


def _last_pid(pid_namespace: bool) -> bytes:
    """The last pid (or thread id) handed out in this pid namespace; b"" outside of one."""
    if not pid_namespace:
        return b""
    try:
        fd = _os_open("/proc/sys/kernel/ns_last_pid", os.O_RDONLY)
        try:
            return _os_read(fd, 32)
        finally:
            _os_close(fd)
    except OSError:
        return b"?"


def _make_integrity_check() -> Callable[[], str | None]:
    """An identity snapshot of the namespaces the worker's own code looks names up in (taken now)."""
    targets: list[tuple[str, Any]] = [
        ("the grader's worker code (grader.runner)", sys.modules[__name__].__dict__),
        ("the grader's codec (grader.wire)", wire.__dict__),
        ("Python's builtins", builtins.__dict__),
        ("the op trace (OpTrace)", OpTrace.__dict__),
        ("the op trace (TorchDispatchMode)", TorchDispatchMode.__dict__),
    ]
    items = [(what, space, list(space.items())) for what, space in targets]
    length, missing = len, object()

    def changed() -> str | None:
        for what, space, pairs in items:
            if length(space) != length(pairs):
                return what
            get = space.get
            for key, value in pairs:
                if get(key, missing) is not value:
                    return what
        return None

    return changed


# ----------------------------------------------------------------------------- loading


def preload(key: str, exercise: str, cases: list[dict[str, Any]], blobs: list[bytes]) -> None:
    """Decode an exercise's input tensors once (in the fork-server), twice over.

    A worker hands the second copy to the student's calls as it is: its pages are shared with the
    fork-server until written, so a call costs no copy. The first copy stays pristine: it is the
    mutation check's "before", and a tensor found changed is replaced from it for later calls.
    """
    pristine: dict[int, torch.Tensor] = {}
    for case in cases:
        for node in (*case["args"], *case["kwargs"].values()):
            if isinstance(node, dict) and node.get("t") == "tensor":
                pristine[node["b"]] = wire.decode_value(node, blobs)
    shared = {b: _clone(t) for b, t in pristine.items()}
    PRELOADED.setdefault(key, {})[exercise] = (cases, blobs, pristine, shared)


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
        text = str.__str__(str(obj))  # an exact str, whatever __str__ returned
    except BaseException as e:
        return f"(could not show this value: {type(e).__name__})"
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "…"


def describe_exception(exc: BaseException, student_files: set[str]) -> dict[str, Any]:
    """Type, base names, message and the student's own frames (selected by file name)."""
    kind = type(exc)
    try:
        kinds = [str.__str__(c.__name__) for c in kind.__mro__]
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
    return [(i, _detach(_clone(a))) for i, a in enumerate(args) if type(a) is _Tensor]


def _pristine(encoded: list[Any], prebuilt: dict[int, torch.Tensor]) -> list[tuple[int, torch.Tensor]]:
    """The untouched preloaded tensors of the positional arguments (no copy needed)."""
    return [
        (i, prebuilt[a["b"]])
        for i, a in enumerate(encoded)
        if isinstance(a, dict) and a.get("t") == "tensor" and a.get("b") in prebuilt
    ]


def _renew(
    shared: dict[int, torch.Tensor],
    case: dict[str, Any],
    mutated: list[int],
    pristine: dict[int, torch.Tensor] | None,
) -> None:
    """Replace the shared input tensors a call changed in place by fresh copies of the pristine ones."""
    for i in mutated:
        node = case["args"][i]
        if pristine is not None and isinstance(node, dict) and node.get("b") in pristine:
            shared[node["b"]] = _detach(_clone(pristine[node["b"]]))


def _same_bytes(a: torch.Tensor, b: torch.Tensor) -> bool:
    """True if two contiguous tensors of one shape and dtype hold the same bytes (False: not known).

    Equal bytes mean equal values, NaNs in the same places included, for every dtype but the
    complex ones (whose NaN components ``torch.equal`` never takes as equal). numpy compares them
    several times faster than ``torch.equal`` (a scalar loop), and outside the op trace.
    """
    if _is_complex(a) or not (_is_contiguous(a) and _is_contiguous(b)):
        return False
    try:
        x = _to_numpy(a).reshape(-1).view(_np_uint8)
        y = _to_numpy(b).reshape(-1).view(_np_uint8)
        size = x.shape[0]
        if size % 8 == 0:
            x, y = x.view(_np_uint64), y.view(_np_uint64)
        elif size % 4 == 0:
            x, y = x.view(_np_uint32), y.view(_np_uint32)
        return bool(_np_all(_np_equal(x, y)))
    except Exception:  # a dtype numpy does not have, a conjugate/negative view, ...
        return False


def _changed(before: torch.Tensor, after: Any) -> bool:
    try:
        if type(after) is not _Tensor:
            return True
        if _shape_of(after) != _shape_of(before) or _dtype_of(after) != _dtype_of(before):
            return True
        a = _detach(after)
        if _same_bytes(a, before) or _equal(a, before):
            return False
        if _is_floating_point(a):
            same = _logical_or(_eq(a, before), _logical_and(_isnan(a), _isnan(before)))
            return not _item(_all(same))
        return True
    except Exception:
        return True


def _encode(value: Any, blobs: list[bytes]) -> Any:
    try:
        return wire.encode_value(value, blobs)
    except Exception as e:  # the codec refused the value
        return {"t": "unsupported", "type": f"value that cannot be sent ({type(e).__name__})"}


def _hooked() -> bool:
    """Remove a tracing or profiling hook (it would see, and could change, the runner's frames)."""
    if _gettrace() is None and _getprofile() is None:
        return False
    _settrace(None)
    _setprofile(None)
    return True


def call_case(
    fn: Callable[..., Any],
    case: dict[str, Any],
    blobs: list[bytes],
    student_files: set[str],
    *,
    pid_namespace: bool = False,
    traced: bool = True,
    prebuilt: dict[int, torch.Tensor] | None = None,
    shared: dict[int, torch.Tensor] | None = None,
) -> tuple[dict[str, Any], list[bytes]]:
    """Call ``fn`` on one decoded case; return the result header and its blobs.

    With ``traced`` (the exercise forbids some ops) the call runs under the op trace, and the
    header says ``"untraced"`` (and why) when the trace cannot vouch for it; with
    ``pid_namespace`` (the worker is pid 1 of its own pid namespace) threads started during the
    call are noticed too. Without ``traced`` there is nothing to hide from, so nothing is traced.
    ``prebuilt`` holds the case's input tensors decoded once in the fork-server, pristine: they
    serve as the mutation check's "before". ``shared`` holds copies of them that the call gets as
    they are (no copy per call; a case that takes a gradient gets fresh copies instead); one found
    changed after the call is replaced by a fresh copy of the pristine tensor.
    """
    hits: list[str] = []
    if traced and _hooked():
        hits.append("a tracing or profiling hook (sys.settrace / sys.setprofile) was installed")
    if traced and (_mode_depth() or _function_mode_depth()):
        hits.append("a torch dispatch or function mode was left active")
    grad_wrt = case.get("grad_wrt")
    given = shared if shared is not None and grad_wrt is None else prebuilt
    copy = given is not shared
    with _NoTorchFunction():
        args = [wire.decode_value(a, blobs, allow_path=True, prebuilt=given, copy=copy) for a in case["args"]]
        kwargs = {
            k: wire.decode_value(v, blobs, allow_path=True, prebuilt=given, copy=copy)
            for k, v in case["kwargs"].items()
        }
        grad_output = wire.decode_value(case["grad_output"], blobs) if case.get("grad_output") else None
        leaf = _requires_grad_(args[grad_wrt], True) if grad_wrt is not None else None
        before = _snapshot(args) if prebuilt is None else _pristine(case["args"], prebuilt)
    if traced and _python_threads() > 1:
        hits.append("another thread was running (code in other threads is not traced)")
    trace = OpTrace() if traced else None
    out_blobs: list[bytes] = []
    value: Any = None
    key: Any = None
    if trace is not None:
        _push_mode(trace)
        key = _arm(trace)
    last_pid = _last_pid(pid_namespace and traced)
    start = _monotonic()
    try:
        value = fn(*args, **kwargs)
    except NotImplementedError:
        result: dict[str, Any] = {"kind": "not_implemented"}
    except BaseException as exc:
        result = describe_exception(exc, student_files)
    else:
        result = {"kind": "returned"}
    # Still inside the trace: student code that runs from here on (hooks, backward) is traced too.
    gc_was_on = _gc_isenabled()
    _gc_disable()
    try:
        if traced and _hooked():
            hits.append("a tracing or profiling hook (sys.settrace / sys.setprofile) was installed")
        if result["kind"] == "returned" and leaf is not None:
            result["grad"], result["grad_error"] = _gradient(
                value, leaf, grad_output, out_blobs, student_files
            )
        elapsed = _monotonic() - start
        if result["kind"] == "returned":
            with _NoTorchFunction():
                result["value"] = _encode(value, out_blobs)
                result["mutated"] = [i for i, snap in before if _changed(snap, args[i])]
                if shared is not None and not copy:
                    _renew(shared, case, result["mutated"], prebuilt)
            size = sum(len(b) for b in out_blobs)
            if size > wire.MAX_REPLY_BLOB_BYTES:
                out_blobs = []
                result["value"] = {
                    "t": "unsupported",
                    "type": f"result of {size:,} bytes (more than the {wire.MAX_REPLY_BLOB_BYTES:,} a reply may carry)",
                }
                if "grad" in result:
                    result["grad"], result["grad_error"] = None, "the result was too large to send"
        if trace is not None:
            with _NoTorchFunction():
                seen = _count(trace, key)
                _neg(_CANARY)
                depth = _mode_depth()
                alive = _count(trace, key) > seen and depth >= 1 and _mode_at(depth - 1) is trace
            if not alive:
                hits.append("the op trace was switched off")
            if last_pid != _last_pid(pid_namespace):
                hits.append("a thread was started (code in other threads is not traced)")
            elif _python_threads() > 1 and not any("thread" in h for h in hits):
                hits.append("another thread was running (code in other threads is not traced)")
    finally:
        if trace is not None:
            hits += _disarm(trace, key)
            while _mode_depth():
                if _pop_mode(None) is trace:
                    break
        if gc_was_on:
            _gc_enable()
    ops = _take(trace, key)[0] if trace is not None else set()
    header = {
        "op": "case",
        "id": case["id"],
        "result": result,
        "ops": sorted(ops)[:MAX_OPS],
        "seconds": round(elapsed, 6),
    }
    if hits:
        header["untraced"] = "; ".join(dict.fromkeys(hits))[:500]
    return header, out_blobs


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
    return _encode(_detach(leaf.grad), blobs), None


# ----------------------------------------------------------------------------- serving


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


def serve(sock: socket.socket, layers: tuple[str, ...] = ()) -> NoReturn:
    """The worker's loop: answer load/run requests until told to exit (or the parent goes away).

    Everything the loop uses is bound here, before any student code runs. The parent's first
    request carries a token (and the names of the ops to watch); every reply carries the token
    back, so bytes a student writes straight into the connection are never taken for a reply.
    Before each reply the loop checks that its own code, the codec, builtins and the op trace
    are unpatched; if not, the case is reported as untraced.
    """
    pid_namespace = _getpid() == 1
    changed = _make_integrity_check()
    send = wire.frame_sender(sock)
    recv = wire.frame_receiver(sock)
    run_case, describe, load, watch, exit_now = call_case, describe_exception, load_units, watch_ops, _exit
    modules: dict[str, types.ModuleType] = {}
    student_files: set[str] = set()
    token = ""
    send({"op": "hello", "pid": _getpid(), "layers": list(layers)})

    def reply(header: dict[str, Any], blobs: list[bytes] | tuple[bytes, ...] = ()) -> None:
        tampered = changed()
        if tampered and header.get("op") == "case":
            why = f"{tampered} was modified"
            header["untraced"] = f"{header['untraced']}; {why}" if header.get("untraced") else why
        send({**header, "token": token}, blobs)

    while True:
        try:
            header, blobs = recv()
        except BaseException:
            exit_now(0)
        if not token:
            token = str(header.pop("token", ""))
            watch(header.pop("watch", None) or ())
        op = header.get("op")
        if op == "exit":
            _flush()
            exit_now(0)
        elif op == "load":
            key = header["key"]
            student_files.update(u["name"] for u in header["units"])
            try:
                modules[key] = load(key, header["units"])
                answer: dict[str, Any] = {"op": "loaded", "ok": True}
            except NotImplementedError:
                answer = {"op": "loaded", "ok": False, "error": {"kind": "not_implemented"}}
            except BaseException as exc:
                answer = {"op": "loaded", "ok": False, "error": describe(exc, student_files)}
            _flush()
            reply(answer)
        elif op == "run":
            module = modules.get(header["key"])
            fn = getattr(module, header["func"], None) if module is not None else None
            if not callable(fn):
                reply({"op": "missing"})
                continue
            traced = header.get("trace", True) is not False
            prebuilt = shared = None
            if "preloaded" in header:  # inputs decoded once in the fork-server
                plan_key, exercise = header["preloaded"]
                cases, blobs, prebuilt, shared = PRELOADED[plan_key][exercise]
            else:
                cases = header["cases"]
            for case in cases:
                result, out_blobs = run_case(
                    fn,
                    case,
                    blobs,
                    student_files,
                    pid_namespace=pid_namespace,
                    traced=traced,
                    prebuilt=prebuilt,
                    shared=shared,
                )
                _flush()
                reply(result, out_blobs)
            reply({"op": "end"})
