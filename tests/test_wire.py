"""The codec between worker and parent: round trips, and strict rejection of anything malformed."""

from __future__ import annotations

import json
import pathlib

import pytest
import torch

from grader import wire
from grader.outcome import Unsupported


def roundtrip(value):
    blobs: list[bytes] = []
    enc = wire.encode_value(value, blobs)
    frame = wire.pack_frame({"v": enc}, blobs)
    decoder = wire.FrameDecoder()
    [(header, got_blobs)] = list(decoder.feed(frame[:7])) + list(decoder.feed(frame[7:]))
    return wire.decode_value(header["v"], got_blobs)


@pytest.mark.parametrize(
    "dtype",
    [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.uint8, torch.bool],
)
def test_tensor_roundtrip(dtype):
    t = (torch.randn(3, 4) * 10).to(dtype)
    back = roundtrip(t)
    assert type(back) is torch.Tensor and back.dtype == dtype and torch.equal(back, t)


def test_values_roundtrip():
    value = [1, 2.5, float("nan"), float("-inf"), "text", True, None, (torch.zeros(0, 3), [3])]
    back = roundtrip(value)
    assert back[0] == 1 and back[1] == 2.5 and back[3] == float("-inf") and back[4] == "text"
    assert back[2] != back[2]
    assert back[5] is True and back[6] is None
    assert back[7][0].shape == (0, 3) and back[7][1] == [3]


@pytest.mark.parametrize(
    "value",
    [
        torch.randn(3, 4).to(torch.bfloat16),
        torch.randn(2, 3, dtype=torch.complex64),
        torch.tensor(2.5),
        torch.zeros(0, 3),
        torch.arange(12.0).reshape(3, 4).t(),
        (torch.arange(6), [torch.ones(2, dtype=torch.bool)]),
        torch.rand(3, 300, 400),  # over GATHER_BYTES: sent part by part with sendmsg
    ],
    ids=["bf16", "complex", "0-d", "empty", "transposed", "nested", "large"],
)
def test_a_reply_sent_from_views_of_the_results_arrives_whole(value):
    import socket
    import threading

    a, b = socket.socketpair()
    with a, b:
        blobs: list = []
        enc = wire.encode_value(value, blobs, copy=False)
        assert any(isinstance(x, memoryview) for x in blobs)
        sender = threading.Thread(target=wire.frame_sender(a), args=({"v": enc}, blobs))
        sender.start()
        header, got = wire.frame_receiver(b)()
        sender.join()
    back = wire.decode_value(header["v"], got)
    flat = back if isinstance(back, torch.Tensor) else back[1][0]
    want = value if isinstance(value, torch.Tensor) else value[1][0]
    assert flat.dtype == want.dtype and torch.equal(flat, want)


def test_noncontiguous_and_grad_tensors():
    t = torch.randn(4, 5, requires_grad=True).t()
    back = roundtrip(t)
    assert torch.equal(back, t.detach()) and not back.requires_grad


class Lying(torch.Tensor):
    pass


class Agreeable:
    def __eq__(self, other):
        return True


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        (torch.randn(2).as_subclass(Lying), "subclass"),
        (Agreeable(), "Agreeable"),
        (pathlib.Path("x"), "PosixPath"),
        (True.__class__.__mro__, "type"),
    ],
)
def test_unsupported_values_are_named(value, needle):
    back = roundtrip(value)
    found = back if isinstance(back, Unsupported) else next(v for v in back if isinstance(v, Unsupported))
    assert needle in found.type_name


def test_paths_only_as_arguments():
    blobs: list[bytes] = []
    enc = wire.encode_arg(pathlib.Path("a/b.jpg"), blobs)
    assert wire.decode_value(enc, blobs, allow_path=True) == pathlib.Path("a/b.jpg")
    with pytest.raises(wire.ProtocolError):
        wire.decode_value(enc, blobs)


@pytest.mark.parametrize(
    "obj",
    [
        {"t": "tensor", "dtype": "float32", "shape": [2], "b": 0},  # wrong byte length
        {"t": "tensor", "dtype": "object", "shape": [1], "b": 0},
        {"t": "tensor", "dtype": "float32", "shape": [-1], "b": 0},
        {"t": "tensor", "dtype": "float32", "shape": [1], "b": 5},
        {"t": "float", "v": 1.5},
        {"t": "int", "v": "1" * 5000},
        {"t": "pickle", "v": "gASV"},
        {"t": "list", "items": "nope"},
        [1, 2],
    ],
)
def test_malformed_values_are_rejected(obj):
    with pytest.raises(wire.ProtocolError):
        wire.decode_value(obj, [b"\x00" * 4])


def test_oversized_frames_are_rejected():
    header = json.dumps({"blobs": [1 << 40]}).encode()
    frame = len(header).to_bytes(4, "big") + header
    with pytest.raises(wire.ProtocolError):
        list(wire.FrameDecoder().feed(frame))
    with pytest.raises(wire.ProtocolError):
        list(wire.FrameDecoder().feed((1 << 30).to_bytes(4, "big")))


def test_deep_nesting_is_rejected():
    obj: dict = {"t": "none"}
    for _ in range(100):
        obj = {"t": "list", "items": [obj]}
    with pytest.raises(wire.ProtocolError):
        wire.decode_value(obj, [])
