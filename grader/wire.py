"""The codec between the trusted parent and a worker: length-prefixed JSON frames plus raw byte blobs.

A frame is ``>I`` (JSON length) + UTF-8 JSON + the blobs named by ``header["blobs"]`` (their lengths),
concatenated. Tensors travel as raw bytes with dtype and shape; everything else as tagged JSON.
Nothing is ever pickled. The parent decodes with strict size limits, so a worker that floods or
lies gets a clear protocol error and nothing else.

In a worker this module is loaded before any student code, and it captures the C-level functions
it needs then (the JSON encoder and scanner, the socket's send/recv, TensorBase methods, torch's
tensor factories): a student who later patches ``json``, ``socket.socket`` or ``torch.Tensor``
does not change how requests are read or replies written (see ``grader.runner``).
"""

from __future__ import annotations

import _socket
import json
import json.decoder
import json.encoder
import math
import pathlib
import socket
import struct
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

from grader.outcome import Unsupported

MAX_HEADER_BYTES = 16 << 20
MAX_FRAME_BLOB_BYTES = 512 << 20
MAX_DEPTH = 16
MAX_ITEMS = 200_000
MAX_STR = 1 << 20
MAX_REPLY_BLOB_BYTES = 64 << 20
"""What one reply of an honest worker may carry (the worker refuses larger results itself)."""

_LEN = struct.Struct(">I")
_pack_len = _LEN.pack
_unpack_len = _LEN.unpack
_sendall = _socket.socket.sendall
_sendmsg = _socket.socket.sendmsg
#: A frame whose blobs hold more bytes than this is sent from its parts (sendmsg), not joined first.
GATHER_BYTES = 1 << 16
_recv = _socket.socket.recv
_TB = torch._C.TensorBase
_detach = _TB.detach
_clone = _TB.clone
_contiguous = _TB.contiguous
_resolve_conj = _TB.resolve_conj
_resolve_neg = _TB.resolve_neg
_view = _TB.view
_reshape = _TB.reshape
_numpy = _TB.numpy
_dtype_of = vars(_TB)["dtype"].__get__
_shape_of = vars(_TB)["shape"].__get__
_device_of = vars(_TB)["device"].__get__
_layout_of = vars(_TB)["layout"].__get__
_is_quantized = vars(_TB)["is_quantized"].__get__
_element_size = _TB.element_size
_numel = _TB.numel
_frombuffer = torch.frombuffer
_from_numpy = torch.from_numpy
_empty = torch.empty
_np_frombuffer = np.frombuffer
_np_int16 = np.int16
_tobytes = np.ndarray.tobytes
_ndarray_copy = np.ndarray.copy
_nd_view = np.ndarray.view
_nd_reshape = np.ndarray.reshape
_memoryview: Any = memoryview  # (numpy arrays are buffers)
_prod = math.prod
_Path = pathlib.Path
_strided = torch.strided
_is_contiguous = _TB.is_contiguous
_is_complex = _TB.is_complex
_np_equal = np.equal
_np_all = np.logical_and.reduce  # C all the way (ndarray.all calls numpy._core._methods)
_np_uint8, _np_uint32, _np_uint64 = np.uint8, np.uint32, np.uint64
_Tensor = torch.Tensor


def _c_json_encoder() -> Any:
    """``json.dumps(obj, separators=(",", ":"), allow_nan=False)`` through the C encoder only."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has the C accelerator
        return json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode

    def default(obj: Any) -> Any:
        raise TypeError(f"cannot send a {type(obj).__name__}")

    iterencode = make(
        None, default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False
    )
    join = "".join

    def encode(obj: Any) -> str:
        return join(iterencode(obj, 0))

    return encode


def _c_json_decoder() -> Any:
    """``json.loads`` for one complete document through the C scanner only."""
    scan = getattr(json.decoder.JSONDecoder(), "scan_once")  # noqa: B009 - not in the stubs

    def decode(text: str) -> Any:
        try:
            value, end = scan(text, 0)
        except StopIteration:
            raise ValueError("not a JSON document") from None
        if end != len(text):
            raise ValueError("extra data after the JSON document")
        return value

    return decode


_json_encode = _c_json_encoder()
_json_decode = _c_json_decoder()

_DTYPES: dict[str, torch.dtype] = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
    "complex64": torch.complex64,
    "complex128": torch.complex128,
    "uint8": torch.uint8,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
    "bool": torch.bool,
}
_DTYPE_NAMES = {v: k for k, v in _DTYPES.items()}
_BF16 = torch.bfloat16
_I16 = torch.int16


class ProtocolError(Exception):
    """A frame or value that does not follow the protocol (or breaks its limits)."""


def dtype_name(dtype: torch.dtype) -> str:
    return _DTYPE_NAMES.get(dtype, str(dtype).removeprefix("torch."))


# ----------------------------------------------------------------------------- frames


def pack_frame(header: dict[str, Any], blobs: list[bytes] | tuple[bytes, ...] = ()) -> bytes:
    """Serialise one frame."""
    head = dict(header)
    head["blobs"] = [len(b) for b in blobs]
    data = _json_encode(head).encode()
    return b"".join([_pack_len(len(data)), data, *blobs])


def frame_sender(sock: socket.socket) -> Any:
    """``send(header, blobs)`` for a worker, built only from functions captured now (see module doc)."""
    encode, pack_len, sendall, length, join = _json_encode, _pack_len, _sendall, len, b"".join
    sendmsg, view, total, gather = _sendmsg, memoryview, sum, GATHER_BYTES

    def send(header: dict[str, Any], blobs: list[bytes] | tuple[bytes, ...] = ()) -> None:
        sizes = [length(b) for b in blobs]
        head = {**header, "blobs": sizes}
        data = encode(head).encode()
        first = join([pack_len(length(data)), data])
        if total(sizes) <= gather:
            sendall(sock, join([first, *blobs]))
            return
        # large results: hand the kernel the parts as they are (no joined copy of megabytes)
        parts = [view(first), *(view(b) for b in blobs if length(b))]
        while parts:
            sent = sendmsg(sock, parts[:512])
            while sent:
                size = length(parts[0])
                if sent >= size:
                    sent -= size
                    del parts[0]
                else:
                    parts[0] = parts[0][sent:]
                    sent = 0

    return send


def frame_receiver(sock: socket.socket) -> Any:
    """``recv() -> (header, blobs)`` for a worker, built only from functions captured now."""
    decode, unpack_len, recv, length, limit = _json_decode, _unpack_len, _recv, len, MAX_HEADER_BYTES

    def exactly(n: int) -> bytes:
        chunks = bytearray()
        while length(chunks) < n:
            chunk = recv(sock, min(n - length(chunks), 1 << 20))
            if not chunk:
                raise EOFError("the other side closed the connection")
            chunks += chunk
        return bytes(chunks)

    def receive() -> tuple[dict[str, Any], list[bytes]]:
        (n,) = unpack_len(exactly(4))
        if n > limit:
            raise ProtocolError("header too large")
        header = decode(exactly(n).decode())
        if type(header) is not dict:
            raise ProtocolError("frame header is not an object")
        return header, [exactly(size) for size in header.get("blobs", [])]

    return receive


class FrameDecoder:
    """Incremental, size-limited parser of frames (used by the parent on a non-blocking socket)."""

    def __init__(self, max_total: int = MAX_FRAME_BLOB_BYTES) -> None:
        self._buf = bytearray()
        self._max_total = max_total
        self._need: tuple[dict[str, Any], int, int] | None = None  # header, header end, total length

    def feed(self, data: bytes) -> Iterator[tuple[dict[str, Any], list[bytes]]]:
        self._buf += data
        while True:
            frame = self._next()
            if frame is None:
                return
            yield frame

    def _next(self) -> tuple[dict[str, Any], list[bytes]] | None:
        if self._need is None:
            if len(self._buf) < 4:
                return None
            (n,) = _LEN.unpack_from(self._buf)
            if n > MAX_HEADER_BYTES:
                raise ProtocolError(f"frame header of {n} bytes is over the limit")
            if len(self._buf) < 4 + n:
                return None
            try:
                header = _json_decode(bytes(self._buf[4 : 4 + n]).decode())
            except ValueError as e:
                raise ProtocolError(f"frame header is not JSON: {e}") from None
            if not isinstance(header, dict):
                raise ProtocolError("frame header is not an object")
            lengths = header.get("blobs", [])
            if not isinstance(lengths, list) or not all(type(x) is int and x >= 0 for x in lengths):
                raise ProtocolError("frame blob lengths are malformed")
            total = sum(lengths)
            if total > self._max_total:
                raise ProtocolError(f"frame of {total} bytes is over the limit of {self._max_total}")
            self._need = (header, 4 + n, 4 + n + total)
        header, start, end = self._need
        if len(self._buf) < end:
            return None
        # one copy per blob, into a bytearray of its own: decode_value(..., owned=True) then wraps
        # it as a tensor without copying it again
        blobs: list[Any] = []  # bytearrays, read as bytes
        pos = start
        with memoryview(self._buf) as view:
            for length in header.get("blobs", []):
                blobs.append(bytearray(view[pos : pos + length]))
                pos += length
        del self._buf[:end]
        self._need = None
        return header, blobs


def send_frame(
    sock: socket.socket, header: dict[str, Any], blobs: list[bytes] | tuple[bytes, ...] = ()
) -> None:
    """Blocking send (worker side)."""
    sock.sendall(pack_frame(header, blobs))


# ----------------------------------------------------------------------------- values


def tensor_bytes(t: torch.Tensor, *, copy: bool = True) -> bytes | memoryview:
    """Raw little-endian bytes of a strided CPU tensor (contiguous copy; conj/neg views resolved).

    ``copy=False`` (a worker's reply, sent at once): a byte view of the tensor's own memory where
    it is contiguous, which saves the worker a copy of every result.
    """
    t = _contiguous(_resolve_neg(_resolve_conj(_detach(t))))
    if _dtype_of(t) is _BF16:
        t = _view(t, _I16)
    if copy:
        return _tobytes(_numpy(t))
    return _memoryview(_nd_view(_nd_reshape(_numpy(t), -1), _np_uint8))


def encode_arg(value: Any, blobs: list[bytes]) -> Any:
    """Encode an argument the parent sends (a value, or a path for the file-name exercises)."""
    if isinstance(value, pathlib.PurePath):
        return {"t": "path", "v": str(value)}
    if type(value) is slice:
        return {
            "t": "slice",
            "items": [encode_value(v, blobs) for v in (value.start, value.stop, value.step)],
        }
    return encode_value(value, blobs)


def encode_value(value: Any, blobs: list[Any], depth: int = 0, *, copy: bool = True) -> Any:
    """Encode a value into tagged JSON, appending tensor bytes to ``blobs`` (views: ``copy=False``).

    Only exact ``torch.Tensor``, ``bool``, ``int``, ``float``, ``str``, ``None`` and lists/tuples of
    those are encoded; anything else (subclasses included) becomes ``{"t": "unsupported"}``.
    """
    kind = type(value)
    if kind is _Tensor:
        layout, dtype, device = _layout_of(value), _dtype_of(value), _device_of(value)
        if layout is not _strided or _is_quantized(value) or dtype not in _DTYPE_NAMES:
            return {"t": "unsupported", "type": f"torch.Tensor ({layout}, {dtype})"}
        if device.type != "cpu":
            return {"t": "unsupported", "type": f"torch.Tensor on the {device.type} device"}
        size = _numel(value) * _element_size(value)
        if size > MAX_REPLY_BLOB_BYTES:
            return {
                "t": "unsupported",
                "type": f"torch.Tensor of {size:,} bytes (over {MAX_REPLY_BLOB_BYTES:,})",
            }
        blobs.append(tensor_bytes(value, copy=copy))
        return {
            "t": "tensor",
            "dtype": _DTYPE_NAMES[dtype],
            "shape": list(_shape_of(value)),
            "b": len(blobs) - 1,
        }
    if value is None:
        return {"t": "none"}
    if kind is bool:
        return {"t": "bool", "v": value}
    if kind is int:
        try:
            return {"t": "int", "v": str(value)}
        except ValueError:  # more digits than Python will write out (sys.int_info.str_digits_check_threshold)
            return {"t": "unsupported", "type": "int too long to write out"}
    if kind is float:
        return {"t": "float", "v": repr(value)}
    if kind is str:
        if len(value) > MAX_STR:
            return {"t": "str", "v": value[:MAX_STR], "cut": len(value)}
        return {"t": "str", "v": value}
    if kind is tuple or kind is list:
        if depth >= MAX_DEPTH or len(value) > MAX_ITEMS:
            return {"t": "unsupported", "type": f"{kind.__name__} too large or too deep"}
        return {"t": kind.__name__, "items": [encode_value(v, blobs, depth + 1, copy=copy) for v in value]}
    module = getattr(kind, "__module__", "?")
    qual = getattr(kind, "__qualname__", "?")
    if isinstance(value, torch.Tensor):
        return {"t": "unsupported", "type": f"{module}.{qual} (a torch.Tensor subclass)"}
    return {"t": "unsupported", "type": qual if module == "builtins" else f"{module}.{qual}"}


class _Budget:
    def __init__(self) -> None:
        self.items = 0

    def tick(self) -> None:
        self.items += 1
        if self.items > MAX_ITEMS:
            raise ProtocolError("value has too many items")


def decode_value(
    obj: Any,
    blobs: list[bytes],
    depth: int = 0,
    budget: _Budget | None = None,
    allow_path: bool = False,
    prebuilt: Mapping[int, torch.Tensor] | None = None,
    copy: bool = True,
    owned: bool = False,
) -> Any:
    """Strictly decode a tagged JSON value (parent side). Raises ProtocolError on anything odd.

    ``allow_path`` (worker side, arguments only) also accepts a top-level ``path`` or ``slice``.
    ``prebuilt`` (worker side) maps blob indices to tensors decoded once in the fork-server: such
    a tensor is returned as a fresh copy instead of being decoded again (itself, with ``copy=False``).
    ``owned``: the caller hands over ``blobs`` (as :class:`FrameDecoder` made them, one bytearray
    each, decoded once): a tensor's memory is then its blob's, not a copy of it.
    """
    budget = budget or _Budget()
    budget.tick()
    if depth > MAX_DEPTH + 1:
        raise ProtocolError("value nested too deeply")
    if not isinstance(obj, dict) or not isinstance(obj.get("t"), str):
        raise ProtocolError("value is not a tagged object")
    tag = obj["t"]
    if tag == "tensor" and prebuilt is not None and obj.get("b") in prebuilt:
        return _clone(prebuilt[obj["b"]]) if copy else prebuilt[obj["b"]]
    if tag == "tensor":
        dtype = _DTYPES.get(obj.get("dtype"))  # type: ignore[arg-type]
        shape = obj.get("shape")
        index = obj.get("b")
        if dtype is None or not isinstance(shape, list) or type(index) is not int:
            raise ProtocolError("malformed tensor")
        if not all(type(s) is int and s >= 0 for s in shape) or len(shape) > 16:
            raise ProtocolError("malformed tensor shape")
        if not 0 <= index < len(blobs):
            raise ProtocolError("tensor blob index out of range")
        numel = _prod(shape)
        itemsize = _element_size(_empty((), dtype=dtype))
        blob = blobs[index]
        if len(blob) != numel * itemsize:
            raise ProtocolError("tensor byte length does not match its shape and dtype")
        if numel == 0:
            return _empty(shape, dtype=dtype)
        if dtype is _BF16:
            raw = _from_numpy(_ndarray_copy(_np_frombuffer(blob, dtype=_np_int16)))
            return _reshape(_view(raw, _BF16), shape)
        return _reshape(
            _frombuffer(blob if owned and type(blob) is bytearray else bytearray(blob), dtype=dtype), shape
        )
    if tag == "none":
        return None
    if tag == "path" and allow_path and depth == 0 and isinstance(obj.get("v"), str):
        return _Path(obj["v"])
    if tag == "slice" and allow_path and depth == 0 and isinstance(obj.get("items"), list):
        parts = [decode_value(i, blobs, depth + 1, budget) for i in obj["items"]]
        if len(parts) != 3 or not all(p is None or type(p) in (int, float) for p in parts):
            raise ProtocolError("malformed slice")
        return slice(*parts)
    if tag == "bool":
        if type(obj.get("v")) is not bool:
            raise ProtocolError("malformed bool")
        return obj["v"]
    if tag == "int":
        v = obj.get("v")
        if type(v) is not str or len(v) > 4300:
            raise ProtocolError("malformed int")
        try:
            return int(v)
        except ValueError:
            raise ProtocolError("malformed int") from None
    if tag == "float":
        v = obj.get("v")
        if type(v) is not str or len(v) > 64:
            raise ProtocolError("malformed float")
        try:
            return float(v)
        except ValueError:
            raise ProtocolError("malformed float") from None
    if tag == "str":
        v = obj.get("v")
        if type(v) is not str or len(v) > MAX_STR:
            raise ProtocolError("malformed str")
        return v
    if tag in ("list", "tuple"):
        items = obj.get("items")
        if not isinstance(items, list):
            raise ProtocolError("malformed sequence")
        seq = [decode_value(i, blobs, depth + 1, budget, owned=owned) for i in items]
        return seq if tag == "list" else tuple(seq)
    if tag == "unsupported":
        name = obj.get("type")
        return Unsupported(name[:200] if isinstance(name, str) else "?")
    raise ProtocolError(f"unknown value tag {tag[:40]!r}")


def same_bytes(a: torch.Tensor, b: torch.Tensor) -> bool:
    """True if two contiguous tensors of one shape and dtype hold the same bytes (False: not known).

    Equal bytes mean equal values, NaNs in the same places included, for every dtype but the
    complex ones (whose NaN components ``torch.equal`` never takes as equal). numpy compares them
    several times faster than torch (a scalar loop). Used by the worker's mutation check (with
    references bound before any student code) and by the parent's tolerance check.
    """
    if _shape_of(a) != _shape_of(b) or _dtype_of(a) != _dtype_of(b) or _is_complex(a):
        return False
    if not (_is_contiguous(a) and _is_contiguous(b)):
        return False
    try:
        x = _numpy(a).reshape(-1).view(_np_uint8)
        y = _numpy(b).reshape(-1).view(_np_uint8)
        size = x.shape[0]
        if size % 8 == 0:
            x, y = x.view(_np_uint64), y.view(_np_uint64)
        elif size % 4 == 0:
            x, y = x.view(_np_uint32), y.view(_np_uint32)
        return bool(_np_all(_np_equal(x, y)))
    except Exception:  # a dtype numpy does not have, a conjugate/negative view, ...
        return False
