"""Code that runs INSIDE a worker: load the student's sources, call their functions, send back data.

Nothing here judges anything. The worker turns inputs into outputs and reports them as plain data
(tensors as bytes, the rest as JSON); the trusted parent compares, diagnoses and scores. The same
functions serve the fast in-process path used by tests (``grader.testing``).

The one thing the parent has to take from the worker on trust is which aten ops a call ran (the
forbidden-call check): the op trace is a ``TorchDispatchMode`` in the student's own interpreter.
Its record lives in a generator's local variables (the "vault", see below), behind immutable
classes and a master key held only by the worker loop, which runs from a private copy of this
module; an audit hook refuses the garbage collector's object lists, generator frames, tracing
hooks and raw memory access. A call the worker cannot vouch for (another thread, the trace popped
or bypassed, a subclass or patched op, a mode or hook left behind, the record stopped, the
grader's code patched) is reported as ``"untraced"`` and the parent scores it FORBIDDEN. Frames
stay reachable (the standard library needs ``sys._getframe``), so code that walks them can still
forge replies; the parent's static scan (``grader.static``) flags such code for review, and where
the machine allows it the kernel probes (``grader.probes``) count the forbidden ops' kernels from
outside this process, so a forged op list hides nothing.
"""

from __future__ import annotations

import _thread
import builtins
import contextlib
import gc
import linecache
import os
import socket
import sys
import time
import types
from collections.abc import Callable, Generator
from typing import Any, NoReturn

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
_same_bytes = wire.same_bytes
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
_gc_enable, _gc_disable, _gc_isenabled = gc.enable, gc.disable, gc.isenabled
_os_open, _os_read, _os_close, _getpid, _pread = os.open, os.read, os.close, os.getpid, os.pread
_exit = os._exit

#: Inputs decoded once in the fork-server (grader.sandbox "preload"), inherited by every worker:
#: plan key -> exercise id -> (cases as the parent encodes them, their blobs, blob index -> the
#: pristine tensor, blob index -> a copy of it that calls receive as they are).
Preloaded = tuple[list[dict[str, Any]], list[bytes], dict[int, torch.Tensor], dict[int, torch.Tensor]]
PRELOADED: dict[str, dict[str, Preloaded]] = {}

STUDENT_PREFIX = "_imgclass_student_"
MAX_MESSAGE = 2000
MAX_OPS = 300


class IntrospectionBlocked(ValueError):
    """Raised in a worker when graded code reaches for frames, the garbage collector or raw memory.

    A ``ValueError``, because that is what the standard library expects from ``sys._getframe``
    when no frame is available (``logging``, ``collections.namedtuple``, ``enum`` and ``typing``
    then carry on without one).
    """


#: Audit events a worker refuses once it serves (PEP 578 hooks cannot be removed): each is a way to
#: reach the grader's own state (frames, every object, code objects, tracing) or raw memory.
DENIED_EVENTS = frozenset(
    {
        "sys._current_frames",
        "sys._current_exceptions",
        "sys.settrace",
        "sys.setprofile",
        "sys.addaudithook",
        "gc.get_objects",
        "gc.get_referrers",
        "gc.get_referents",
        "ctypes.dlopen",
        "ctypes.dlsym",
        "ctypes.dlsym/handle",
        "ctypes.addressof",
        "ctypes.cdata",
        "ctypes.cdata/buffer",
        "ctypes.string_at",
        "ctypes.wstring_at",
        "ctypes.PyObj_FromPtr",
        "ctypes.call_function",
    }
)
#: attributes whose reading is audited as ``object.__getattr__`` and hands out a generator's frame
#: (the op trace's record lives in one; ``sys._getframe`` and ``tb_frame`` stay allowed: the standard
#: library and common packages need them, see the README's Security section)
FRAME_ATTRIBUTES = frozenset({"gi_frame", "cr_frame", "ag_frame"})
#: function attributes whose writing is audited as ``object.__setattr__`` (swapping the grader's code)
SEALED_ATTRIBUTES = frozenset({"__code__", "__defaults__", "__kwdefaults__"})


def install_audit_hook(protected: frozenset[Any] = frozenset()) -> None:
    """Refuse, in this process from now on, the audit events that reach the grader's own state.

    The code, defaults and keyword defaults of the ``protected`` functions cannot be replaced.
    An audit hook cannot be removed (PEP 578); its state lives in closures nothing reaches.
    """
    denied, frames, sealed, blocked = DENIED_EVENTS, FRAME_ATTRIBUTES, SEALED_ATTRIBUTES, IntrospectionBlocked
    why = "is not allowed in graded code (the garbage collector, tracing and raw memory are off limits)"

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event in denied:
            raise blocked(f"{event} {why}")
        if event == "object.__getattr__":
            if args[1] in frames:
                raise blocked(f"reading .{args[1]} {why}")
        elif event == "object.__setattr__" and args[1] in sealed and args[0] in protected:
            raise blocked(f"replacing the {args[1]} of the grader's own code {why}")

    sys.addaudithook(hook)


# ----------------------------------------------------------------------------- the op trace
#
# The parent takes one thing from the worker on trust: which aten ops a call ran. The record lives
# in the local variables of one generator, the vault, started when this module is imported (before
# any student code). A suspended generator's frame can only be reached through ``gi_frame``, which
# the audit hook refuses, so student code can talk to the vault (it can find its ``send``) but not
# read or rewrite what it keeps; the vault runs only torch's own code (student code that patched
# torch's op classes could run inside it: a frame route, like the one below). Its messages only add: an
# op message adds an op; reading or resetting the record takes the master key, which only the
# worker loop's local variables hold. Killing the vault (``close``/``throw``) is noticed: every
# call after that is reported as untraced. The code that talks to it is sealed: immutable classes
# (tuples, with no globals to rebind), a property the trace's ``__torch_dispatch__`` comes from (an
# instance attribute cannot shadow it), and the audit hook refuses to replace the code or defaults
# of this module's functions. What stays open: the worker loop's own frame (sys._getframe).

_OP, _CALL, _CLAIM, _INSTALL = object(), object(), object(), object()


class TraceLost(Exception):
    """The vault is gone or refused the master key: nothing the trace recorded can be vouched for."""


def _vault_loop() -> Generator[Any, Any, None]:
    """The op record. Every reply is ``(True, value)`` or ``(False, exception)``."""
    _id, _type, _len, _tuple, _set, _list, _sorted = id, type, len, tuple, set, list, sorted
    _exact, _BaseException, _LookupError = str.__str__, BaseException, LookupError
    builtin_function, plain = type(len), torch.Tensor
    op_tag, call_tag, claim_tag, install_tag = _OP, _CALL, _CLAIM, _INSTALL
    C = torch._C
    python_keys = (C.DispatchKey.Python, C.DispatchKey.PythonTLSSnapshot)
    key_set, dispatch_key = C.DispatchKeySet, C.DispatchKey
    aten = torch.ops.aten
    names: dict[int, str] = {}  # id(OpOverload) -> op name: watched ops first, others at first sight
    keep: list[Any] = []  # those OpOverload objects (keeps their ids valid)
    originals: dict[str, Any] = {}  # torch's private switches, wrapped (see install_tripwires)
    master: Any = None
    armed: Any = None  # the trace of the call in progress
    ops: set[str] = _set()
    count = 0
    hits: list[str] = []  # why the call in progress cannot be vouched for
    reply: Any = None

    def hit(why: str) -> None:  # a local of the vault: nothing else refers to it
        if armed is not None and why not in hits:
            hits.append(why)

    while True:
        msg = yield reply
        reply = None
        try:
            head = msg[0]
            if head is op_tag:
                _, mode, func, types = msg
                key = _id(func)
                name = names.get(key)
                if name is None:  # first sight: remember the name (renaming the op later changes nothing)
                    try:
                        name = _exact(func.overloadpacket.__name__)
                    except _BaseException:
                        name = "?"
                    names[key] = name
                    keep.append(func)
                if armed is not None:
                    if mode is armed:
                        ops.add(name)
                        count += 1
                    if types and (_len(types) > 1 or types[0] is not plain):
                        hit("a tensor subclass handled torch ops itself (__torch_dispatch__), untraced")
                op = func._op
                if _type(op) is not builtin_function:
                    hit(f"the torch op {name} was replaced by Python code")
                reply = (True, op)
            elif head is call_tag:
                _, fname, args, kwargs = msg
                original = originals.get(fname) if _type(fname) is str else None
                if original is None:
                    reply = (False, _LookupError(fname))
                    continue
                why = None
                if armed is not None:
                    if fname in ("_ExcludeDispatchKeyGuard", "ExcludeDispatchKeyGuard"):
                        try:
                            keys = args[0] if args else kwargs.get("keys")
                            hides = _type(keys) is not key_set  # never call a student's object here
                            for k in python_keys:
                                if not hides and keys.has(k):
                                    hides = True
                        except _BaseException:
                            hides = True
                    elif fname in ("_SetExcludeDispatchKeyGuard", "_dispatch_tls_set_dispatch_key_excluded"):
                        try:
                            exact = _type(args[0]) is dispatch_key and (
                                _len(args) < 2 or _type(args[1]) is bool
                            )
                            hides = not exact or (args[0] in python_keys and (_len(args) < 2 or args[1]))
                        except _BaseException:
                            hides = True
                    else:
                        hides = fname != "_pop_torch_dispatch_stack"
                    if hides:
                        why = f"switched off the op trace (torch._C.{fname})"
                try:
                    value = original(*args, **kwargs)
                except _BaseException as e:
                    reply = (False, e)
                else:
                    if armed is not None and fname == "_pop_torch_dispatch_stack" and value is armed:
                        why = "switched off the op trace (popped it off torch's dispatch-mode stack)"
                    reply = (True, value)
                if why is not None:
                    hit(why)
            elif master is not None and head is master:
                command = msg[1]
                if command == "arm":
                    armed, ops, count, hits = msg[2], _set(), 0, []
                    reply = (True, None)
                elif command == "count":
                    reply = (True, count)
                elif command == "finish":
                    reply = (True, (_sorted(ops), count, _list(hits)))
                    armed, ops, count, hits = None, _set(), 0, []
                elif command == "watch":
                    for op_name in msg[2]:
                        if _type(op_name) is not str:
                            continue
                        try:
                            packet = getattr(aten, op_name)
                            overloads = [getattr(packet, o) for o in packet.overloads()]
                        except (AttributeError, RuntimeError):
                            continue
                        for overload in overloads:
                            names[_id(overload)] = op_name
                            keep.append(overload)
                    reply = (True, None)
                elif command == "release":
                    master, armed = None, None
                    reply = (True, None)
                else:
                    reply = (False, _LookupError(command))
            elif head is claim_tag and master is None and _len(msg) == 2:
                master = msg[1]
                reply = (True, True)
            elif head is install_tag and not originals:
                originals = dict(msg[1])
                reply = (True, True)
            else:
                reply = (True, False)
        except _BaseException as e:
            hit("the op trace received a message it could not read")
            reply = (False, e)


_VAULT = _vault_loop()
next(_VAULT)
_VAULT_SEND = _VAULT.send


class _Dispatch(tuple):
    """``(vault.send, tag)``: the trace's __torch_dispatch__; tells the vault, then runs the op's C entry point."""

    __slots__ = ()

    def __call__(self, mode: Any, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        ok, op = self[0]((self[1], mode, func, types))
        if not ok:
            raise op
        if kwargs:
            return op(*args, **kwargs)
        return op(*args)


class _Call(tuple):
    """``(vault.send, tag, name)``: stands in for one of torch's private switches; the vault calls it."""

    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        ok, value = self[0]((self[1], self[2], args, kwargs))
        if not ok:
            raise value
        return value


class _Method(_Call):
    """``(vault.send, tag, name, MethodType)``: a _Call that binds like a method."""

    __slots__ = ()

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        return self[3](self, obj)


_DISPATCH = _Dispatch((_VAULT_SEND, _OP))


def _dispatch_of(mode: Any, _bind: Any = types.MethodType, _dispatch: Any = _DISPATCH) -> Any:
    return _bind(_dispatch, mode)


class OpTrace(TorchDispatchMode):
    """Records the names of the aten ops a call runs (how forbidden calls are found, whatever the spelling).

    Watched ops get their names from a map built before any student code ran, so renaming an op
    object does not hide it. The op runs through its C entry point (``func._op``), never through
    Python a student could patch: such code would run while this mode is off the stack, that is,
    untraced. ``__torch_dispatch__`` is a property, so an instance attribute cannot shadow it.
    """

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # no torch._dynamo wrapper: importing it costs ~1 s in every fresh worker

    __torch_dispatch__ = property(_dispatch_of)


def claim() -> Callable[..., Any] | None:
    """Take this process's vault; returns ``admin(command, ...)``, or None if it is already taken.

    Keep the returned function in local variables only: it is the master key.
    """
    send, master = _VAULT_SEND, object()
    try:
        ok, taken = send((_CLAIM, master))
    except BaseException:
        return None
    if not (ok and taken):
        return None

    def admin(*msg: Any) -> Any:
        try:
            ok, value = send((master, *msg))
        except BaseException as e:
            raise TraceLost(f"the grader's op trace was stopped ({type(e).__name__})") from None
        if not ok:
            raise TraceLost(f"the grader's op trace refused the grader ({type(value).__name__})")
        return value

    return admin


_LOCAL: list[Callable[..., Any]] = []  # the in-process path's claim (grader.testing): not a sandbox


def local_admin() -> Callable[..., Any] | None:
    """The vault's admin for in-process use (tests, instructors trying a spec), claimed once."""
    if not _LOCAL:
        admin = claim()
        if admin is None:
            return None
        _LOCAL.append(admin)
    return _LOCAL[0]


_IMMUTABLE_TYPE = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE


def _seal(cls: type) -> bool:
    """Make a class immutable, as built-in types are (no attribute can be set or replaced on it)."""
    import ctypes

    flags = cls.__flags__
    base = id(cls)
    for offset in range(8 * 10, 8 * 40, 8):  # tp_flags sits a few pointers into PyTypeObject
        word = ctypes.c_ulong.from_address(base + offset)
        if word.value == flags:
            word.value = flags | _IMMUTABLE_TYPE
            return bool(cls.__flags__ & _IMMUTABLE_TYPE)
    return False


def install_tripwires() -> None:
    """Seal the trace and route torch's private switches through the vault (call in the fork-server).

    While a call is traced, popping its trace off the dispatch-mode stack, excluding the Python
    dispatch key, or redispatching an op below it marks the call as untraced. Outside a call the
    wrappers only pass through. Every module that imported one of the originals by name gets the
    wrapper too. print(tensor) no longer switches dispatch modes off: the trace records torch's
    formatting ops like any others.
    """
    if _LOCAL:  # this process graded in-process before it became a fork-server: hand the vault back
        _LOCAL.pop()("release")
    C = torch._C
    originals: dict[str, Any] = {}
    wrapped: dict[int, Any] = {}
    for name in (
        "_pop_torch_dispatch_stack",
        "_ExcludeDispatchKeyGuard",
        "ExcludeDispatchKeyGuard",
        "_SetExcludeDispatchKeyGuard",
        "_dispatch_tls_set_dispatch_key_excluded",
        "_ForceDispatchKeyGuard",
        "_DisableTorchDispatch",
    ):
        original = getattr(C, name, None)
        if original is None or isinstance(original, _Call):
            continue
        originals[name] = original
        wrapped.setdefault(id(original), _Call((_VAULT_SEND, _CALL, name)))
    handle = getattr(C, "_DispatchOperatorHandle", None)
    redispatch = getattr(handle, "redispatch_boxed", None)
    if redispatch is not None and not isinstance(redispatch, _Call):
        originals["redispatch_boxed"] = redispatch
    ok, installed = _VAULT_SEND((_INSTALL, originals))
    if not (ok and installed):
        return  # installed before (this process was forked from a fork-server)
    for name, original in originals.items():
        if name != "redispatch_boxed":
            setattr(C, name, wrapped[id(original)])
    if redispatch is not None and "redispatch_boxed" in originals:
        with contextlib.suppress(TypeError, AttributeError):
            handle.redispatch_boxed = _Method((_VAULT_SEND, _CALL, "redispatch_boxed", types.MethodType))  # type: ignore[union-attr]
    kept = [o for n, o in originals.items() if n != "redispatch_boxed"]
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for key, value in list(namespace.items()):
            new = wrapped.get(id(value))
            if new is not None and any(value is o for o in kept):
                namespace[key] = new

    import importlib

    tensor_str = importlib.import_module("torch._tensor_str")
    intern, no_grad, no_functorch = tensor_str._str_intern, torch.no_grad, C._DisableFuncTorch

    def _str(self: Any, *, tensor_contents: Any = None) -> str:
        with no_grad():
            guard = no_functorch()  # noqa: F841 - held for the formatting
            return str(intern(self, tensor_contents=tensor_contents))

    tensor_str._str = _str  # type: ignore[attr-defined]
    for cls in (OpTrace, TorchDispatchMode, _Dispatch, _Call, _Method):
        _seal(cls)


def _python_threads(_count: Callable[[], int] = _thread._count) -> int:
    return 1 + _count()


def _last_pid(pid_namespace: bool, ns_fd: int = -1) -> bytes:
    """The last pid (or thread id) handed out in this pid namespace; b"" outside of one.

    ``ns_fd``: an open ``/proc/sys/kernel/ns_last_pid`` (the worker has no /proc of its own).
    """
    if not pid_namespace:
        return b""
    if ns_fd >= 0:
        try:
            return _pread(ns_fd, 32, 0)
        except OSError:
            return b"?"
    try:
        fd = _os_open("/proc/sys/kernel/ns_last_pid", os.O_RDONLY)
        try:
            return _os_read(fd, 32)
        finally:
            _os_close(fd)
    except OSError:
        return b"?"


def _version_tag_reader(offset: int | None = None) -> Callable[[dict[Any, Any]], Any] | None:
    """Where dicts carry a version tag (CPython 3.11, PEP 509): a function giving a live view of a
    dict's tag. The tag changes whenever a key is added or removed or a value is replaced by
    another object, and never takes an old value again. None elsewhere (then identities are compared),
    or where a dict at ``offset`` (the tag's, by default) does not behave like that tag.
    """
    if sys.implementation.name != "cpython" or sys.version_info[:2] != (3, 11) or hasattr(sys, "getobjects"):
        return None  # (getobjects: a Py_TRACE_REFS build, whose objects have two more fields)
    import ctypes

    if offset is None:
        offset = 3 * ctypes.sizeof(ctypes.c_ssize_t)  # after ob_refcnt, ob_type and ma_used
    at = offset

    def tag(d: dict[Any, Any]) -> Any:
        return ctypes.c_uint64.from_address(id(d) + at)

    probe: dict[str, Any] = {}
    view = tag(probe)
    seen = [view.value]
    probe["key"] = value = object()  # added: a new tag
    seen.append(view.value)
    probe["key"] = value  # the same object again: the same tag
    same = view.value
    probe["key"] = object()  # replaced (no other field of the dict changes for this): a new tag
    seen.append(view.value)
    del probe["key"]  # removed: a new tag
    seen.append(view.value)
    if same != seen[1] or len(set(seen)) != len(seen):  # not the layout expected: do not rely on it
        return None
    return tag


def _make_integrity_check() -> Callable[[], str | None]:
    """An identity snapshot of the namespaces the worker's own code looks names up in (taken now).

    With dict version tags (:func:`_version_tag_reader`) the check reads one number per namespace
    (~0.5 µs instead of ~10 µs for ~450 names, before each of ~170 replies per submission), and it
    also notices a name changed and changed back.
    """
    targets: list[tuple[str, Any]] = [
        ("the grader's worker code (grader.runner)", sys.modules[__name__].__dict__),
        ("the grader's codec (grader.wire)", wire.__dict__),
        ("Python's builtins", builtins.__dict__),
        ("the op trace (OpTrace)", OpTrace.__dict__),
        ("the op trace (TorchDispatchMode)", TorchDispatchMode.__dict__),
    ]
    tag = _version_tag_reader()
    if tag is not None:
        # a class's __dict__ is a read-only proxy: the tag is its underlying dict's
        spaces = [
            (what, space if type(space) is dict else gc.get_referents(space)[0]) for what, space in targets
        ]
        if all(type(space) is dict for _, space in spaces):
            views = [(what, tag(space)) for what, space in spaces]
            tags = [(what, view, view.value) for what, view in views]

            def changed_tag() -> str | None:
                for what, view, value in tags:
                    if view.value != value:
                        return what
                return None

            return changed_tag
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
    # a blob decoded above is never read again (calls get the tensors): keep no third copy of it
    blobs = [b"" if i in pristine else blob for i, blob in enumerate(blobs)]
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


def _encode(value: Any, blobs: list[bytes | memoryview]) -> Any:
    try:
        return wire.encode_value(value, blobs, copy=False)  # sent before anything else runs
    except Exception as e:  # the codec refused the value
        return {"t": "unsupported", "type": f"value that cannot be sent ({type(e).__name__})"}


def _hooked() -> bool:
    """Remove a tracing or profiling hook (it would see, and could change, the runner's frames)."""
    if _gettrace() is None and _getprofile() is None:
        return False
    with contextlib.suppress(IntrospectionBlocked):  # in a worker, no hook can have been set
        _settrace(None)
        _setprofile(None)
    return True


def _tell(admin: Any, hits: list[str], *msg: Any) -> Any:
    """One command to the vault; if it is gone, say so in ``hits`` and return None."""
    try:
        return admin(*msg)
    except TraceLost as e:
        hits.append(str(e))
        return None


def call_case(
    fn: Callable[..., Any],
    case: dict[str, Any],
    blobs: list[bytes],
    student_files: set[str],
    *,
    pid_namespace: bool = False,
    ns_fd: int = -1,
    traced: bool = True,
    prebuilt: dict[int, torch.Tensor] | None = None,
    shared: dict[int, torch.Tensor] | None = None,
    admin: Callable[..., Any] | None = None,
) -> tuple[dict[str, Any], list[bytes | memoryview]]:
    """Call ``fn`` on one decoded case; return the result header and its blobs.

    ``admin`` is the op trace's master key (``claim``; in-process, ``local_admin`` is used).

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
    if traced and admin is None:
        admin = local_admin()
        if admin is None:
            hits.append("the grader's op trace is held by other code")
    trace = OpTrace() if traced and admin is not None else None
    out_blobs: list[bytes | memoryview] = []
    value: Any = None
    if trace is not None:
        _push_mode(trace)
        _tell(admin, hits, "arm", trace)
    last_pid = _last_pid(pid_namespace and traced, ns_fd)
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
                seen = _tell(admin, hits, "count")
                try:
                    _neg(_CANARY)
                except BaseException:  # the vault is gone: every op under the trace fails
                    seen = None
                depth = _mode_depth()
                after = _tell(admin, hits, "count") if seen is not None else None
                alive = seen is not None and after is not None and after > seen
                alive = alive and depth >= 1 and _mode_at(depth - 1) is trace
            if not alive:
                hits.append("the op trace was switched off")
            if last_pid != _last_pid(pid_namespace, ns_fd):
                hits.append("a thread was started (code in other threads is not traced)")
            elif _python_threads() > 1 and not any("thread" in h for h in hits):
                hits.append("another thread was running (code in other threads is not traced)")
    finally:
        ops: list[str] = []
        if trace is not None:
            record = _tell(admin, hits, "finish")
            if record is not None:
                ops, _, trace_hits = record
                hits += trace_hits
            try:
                while _mode_depth():
                    if _pop_mode(None) is trace:
                        break
            except BaseException:  # the vault behind the wrapper is gone: already reported
                hits.append("the grader's op trace was stopped")
        if gc_was_on:
            _gc_enable()
    header = {
        "op": "case",
        "id": case["id"],
        "result": result,
        "ops": list(ops)[:MAX_OPS],
        "seconds": round(elapsed, 6),
    }
    if hits:
        header["untraced"] = "; ".join(dict.fromkeys(hits))[:500]
    return header, out_blobs


def _gradient(
    value: Any,
    leaf: torch.Tensor,
    grad_output: Any,
    blobs: list[bytes | memoryview],
    student_files: set[str],
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


def _own_functions() -> list[types.FunctionType]:
    """This module's functions and the methods of its classes."""
    found: list[types.FunctionType] = []
    for value in list(globals().values()):
        if isinstance(value, types.FunctionType) and value.__module__ == __name__:
            found.append(value)
        elif isinstance(value, type) and value.__module__ == __name__:
            for member in vars(value).values():
                inner = getattr(member, "__func__", None) or getattr(member, "fget", None) or member
                if isinstance(inner, types.FunctionType):
                    found.append(inner)
    return found


def _private_namespace() -> dict[str, Any]:
    """A copy of this module's namespace whose functions look their globals up in the copy.

    Student code can rebind this module's attributes (``grader.runner.call_case = ...``), but not
    what the copies see: nothing it can reach refers to the copy or to them.
    """
    private = dict(globals())
    for name, value in list(private.items()):
        if isinstance(value, types.FunctionType) and value.__module__ == __name__:
            copy = types.FunctionType(
                value.__code__, private, value.__name__, value.__defaults__, value.__closure__
            )
            copy.__kwdefaults__ = dict(value.__kwdefaults__) if value.__kwdefaults__ else None
            private[name] = copy
    # the mutation check's byte comparison lives in grader.wire: give it a snapshot of that
    # module's namespace too, so rebinding grader.wire's attributes cannot fool it either
    same = wire.same_bytes
    private["_same_bytes"] = types.FunctionType(same.__code__, dict(vars(wire)), same.__name__)
    return private


def serve(sock: socket.socket, layers: tuple[str, ...] = (), ns_fd: int = -1) -> NoReturn:
    """Run the worker's loop (``_serve``) from a private copy of this module (before any student code).

    ``ns_fd``: an open ``/proc/sys/kernel/ns_last_pid`` when the worker has no /proc.
    """
    private = _private_namespace()
    # The inputs of every exercise stay in the private copy only: by name, student code never
    # reaches a later exercise's inputs (to answer it ahead, while an exercise that allows the op
    # it forbids runs: the kernel probes attribute hits to the exercise running).
    globals()["PRELOADED"] = {}
    copies = [v for v in private.values() if isinstance(v, types.FunctionType)]
    private["_serve"](sock, layers, frozenset(_own_functions()) | frozenset(copies), ns_fd)
    _exit(0)  # pragma: no cover - _serve never returns


def _serve(
    sock: socket.socket, layers: tuple[str, ...], protected: frozenset[Any], ns_fd: int = -1
) -> NoReturn:
    """The worker's loop: answer load/run requests until told to exit (or the parent goes away).

    Everything the loop uses is bound here, before any student code runs. The parent's first
    request carries a token (and the names of the ops to watch); every reply carries the token
    back, so bytes a student writes straight into the connection are never taken for a reply.
    Before each reply the loop checks that its own code, the codec, builtins and the op trace
    are unpatched; if not, the case is reported as untraced. The op trace's master key
    (``admin``) lives only in this function's variables and is passed down as an argument: no
    object student code can reach refers to it (only a frame does: see the README's Security).
    """
    pid_namespace = _getpid() == 1
    changed = _make_integrity_check()
    send = wire.frame_sender(sock)
    recv = wire.frame_receiver(sock)
    run_case, describe, load, exit_now = call_case, describe_exception, load_units, _exit
    admin = claim()
    install_audit_hook(protected)
    modules: dict[str, types.ModuleType] = {}
    student_files: set[str] = set()
    token = ""
    send({"op": "hello", "pid": _getpid(), "layers": list(layers)})

    def reply(header: dict[str, Any], blobs: list[bytes | memoryview] | tuple[bytes, ...] = ()) -> None:
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
            if admin is not None:
                with contextlib.suppress(TraceLost):
                    admin("watch", list(header.pop("watch", None) or ()))
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
                    ns_fd=ns_fd,
                    traced=traced,
                    prebuilt=prebuilt,
                    shared=shared,
                    admin=admin,
                )
                _flush()
                reply(result, out_blobs)
            reply({"op": "end"})
