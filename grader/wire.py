"""The codec between the trusted parent and a worker: length-prefixed JSON frames plus raw byte blobs.

A frame is ``>I`` (JSON length) + UTF-8 JSON + the blobs named by ``header["blobs"]`` (their lengths),
concatenated. Tensors travel as raw bytes with dtype and shape; everything else as tagged JSON.
Nothing is ever pickled. The parent decodes with strict size limits, so a worker that floods or
lies gets a clear protocol error and nothing else.
"""

from __future__ import annotations

import json
import math
import pathlib
import socket
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from grader.outcome import Unsupported

MAX_HEADER_BYTES = 16 << 20
MAX_FRAME_BLOB_BYTES = 512 << 20
MAX_DEPTH = 16
MAX_ITEMS = 200_000
MAX_STR = 1 << 20

_LEN = struct.Struct(">I")

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


class ProtocolError(Exception):
    """A frame or value that does not follow the protocol (or breaks its limits)."""


def dtype_name(dtype: torch.dtype) -> str:
    return _DTYPE_NAMES.get(dtype, str(dtype).removeprefix("torch."))


# ----------------------------------------------------------------------------- frames


def pack_frame(header: dict[str, Any], blobs: list[bytes] | tuple[bytes, ...] = ()) -> bytes:
    """Serialise one frame."""
    head = dict(header)
    head["blobs"] = [len(b) for b in blobs]
    data = json.dumps(head, separators=(",", ":"), allow_nan=False).encode()
    return b"".join([_LEN.pack(len(data)), data, *blobs])


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
                header = json.loads(bytes(self._buf[4 : 4 + n]))
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
        blobs: list[bytes] = []
        pos = start
        for length in header.get("blobs", []):
            blobs.append(bytes(self._buf[pos : pos + length]))
            pos += length
        del self._buf[:end]
        self._need = None
        return header, blobs


def send_frame(
    sock: socket.socket, header: dict[str, Any], blobs: list[bytes] | tuple[bytes, ...] = ()
) -> None:
    """Blocking send (worker side)."""
    sock.sendall(pack_frame(header, blobs))


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(min(n - len(chunks), 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the connection")
        chunks += chunk
    return bytes(chunks)


def recv_frame(sock: socket.socket) -> tuple[dict[str, Any], list[bytes]]:
    """Blocking receive (worker side; the parent is trusted, limits are still checked)."""
    (n,) = _LEN.unpack(_recv_exact(sock, 4))
    if n > MAX_HEADER_BYTES:
        raise ProtocolError("header too large")
    header = json.loads(_recv_exact(sock, n))
    blobs = [_recv_exact(sock, length) for length in header.get("blobs", [])]
    return header, blobs


# ----------------------------------------------------------------------------- values


def tensor_bytes(t: torch.Tensor) -> bytes:
    """Raw little-endian bytes of a CPU tensor (contiguous copy)."""
    t = t.detach().cpu().contiguous()
    if t.dtype is torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


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


def encode_value(value: Any, blobs: list[bytes], depth: int = 0) -> Any:
    """Encode a value into tagged JSON, appending tensor bytes to ``blobs``.

    Only exact ``torch.Tensor``, ``bool``, ``int``, ``float``, ``str``, ``None`` and lists/tuples of
    those are encoded; anything else (subclasses included) becomes ``{"t": "unsupported"}``.
    """
    kind = type(value)
    if kind is torch.Tensor:
        if value.is_sparse or value.is_quantized or value.dtype not in _DTYPE_NAMES:
            return {"t": "unsupported", "type": f"torch.Tensor ({value.layout}, {value.dtype})"}
        blobs.append(tensor_bytes(value))
        return {
            "t": "tensor",
            "dtype": _DTYPE_NAMES[value.dtype],
            "shape": list(value.shape),
            "b": len(blobs) - 1,
        }
    if value is None:
        return {"t": "none"}
    if kind is bool:
        return {"t": "bool", "v": value}
    if kind is int:
        return {"t": "int", "v": str(value)}
    if kind is float:
        return {"t": "float", "v": repr(value)}
    if kind is str:
        if len(value) > MAX_STR:
            return {"t": "str", "v": value[:MAX_STR], "cut": len(value)}
        return {"t": "str", "v": value}
    if kind is tuple or kind is list:
        if depth >= MAX_DEPTH or len(value) > MAX_ITEMS:
            return {"t": "unsupported", "type": f"{kind.__name__} too large or too deep"}
        return {"t": kind.__name__, "items": [encode_value(v, blobs, depth + 1) for v in value]}
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
    obj: Any, blobs: list[bytes], depth: int = 0, budget: _Budget | None = None, allow_path: bool = False
) -> Any:
    """Strictly decode a tagged JSON value (parent side). Raises ProtocolError on anything odd.

    ``allow_path`` (worker side, arguments only) also accepts a top-level ``path`` or ``slice``.
    """
    budget = budget or _Budget()
    budget.tick()
    if depth > MAX_DEPTH + 1:
        raise ProtocolError("value nested too deeply")
    if not isinstance(obj, dict) or not isinstance(obj.get("t"), str):
        raise ProtocolError("value is not a tagged object")
    tag = obj["t"]
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
        numel = math.prod(shape)
        itemsize = torch.empty((), dtype=dtype).element_size()
        blob = blobs[index]
        if len(blob) != numel * itemsize:
            raise ProtocolError("tensor byte length does not match its shape and dtype")
        if numel == 0:
            return torch.empty(shape, dtype=dtype)
        if dtype is torch.bfloat16:
            raw = torch.from_numpy(np.frombuffer(blob, dtype=np.int16).copy())
            return raw.view(torch.bfloat16).reshape(shape)
        return torch.frombuffer(bytearray(blob), dtype=dtype).reshape(shape)
    if tag == "none":
        return None
    if tag == "path" and allow_path and depth == 0 and isinstance(obj.get("v"), str):
        return pathlib.Path(obj["v"])
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
        seq = [decode_value(i, blobs, depth + 1, budget) for i in items]
        return seq if tag == "list" else tuple(seq)
    if tag == "unsupported":
        name = obj.get("type")
        return Unsupported(name[:200] if isinstance(name, str) else "?")
    raise ProtocolError(f"unknown value tag {tag[:40]!r}")
