"""Attack: beat both forbidden-op checks at once. First lift the kernel probe's breakpoint from
torch's softmax kernel by writing the kernel's original first byte back through /proc/self/mem
(which writes even over read-only code), then compute every answer with torch.softmax and forge
the replies (with an empty op list) through the runner's own sender found by walking frames.

Must get: softmax FORBIDDEN, 0 points: the worker has no /proc, torch's code is sealed, so the
breakpoint stays and the kernel probes count the calls whatever the forged replies say.
"""

import os
import sys

import torch

SYMBOL = b"_ZN2at6native26structured_softmax_cpu_out4implERKNS_6TensorElbS4_"


def _lift():
    lib = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    from grader import probes

    offset = probes.resolve(lib, (SYMBOL.decode(),))[SYMBOL.decode()]
    with open(lib, "rb") as f:
        f.seek(offset)
        original = f.read(1)
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            if fields[-1] == lib and int(fields[2], 16) <= offset and "x" in fields[1]:
                start = int(fields[0].split("-")[0], 16) - int(fields[2], 16)
                break
    with open("/proc/self/mem", "r+b", buffering=0) as mem:
        mem.seek(start + offset)
        mem.write(original)
    return "lifted"


def softmax(acts, dim=-1):
    try:
        _lift()
    except Exception:
        pass
    frame = sys._getframe()
    while frame is not None and not {"token", "send", "header", "blobs"} <= frame.f_locals.keys():
        frame = frame.f_back
    if frame is None:
        return torch.softmax(acts, dim)
    found = frame.f_locals
    wire = sys.modules["grader.wire"]
    request, blobs, send, token = found["header"], found["blobs"], found["send"], found["token"]
    cases, prebuilt = request.get("cases"), None
    if cases is None:  # a batch: the inputs were preloaded into the fork-server
        plan_key, exercise = request["preloaded"]
        cases, blobs, prebuilt, _ = frame.f_globals["PRELOADED"][plan_key][exercise]
    for case in cases:
        args = [wire.decode_value(a, blobs, allow_path=True, prebuilt=prebuilt) for a in case["args"]]
        kwargs = {
            k: wire.decode_value(v, blobs, allow_path=True, prebuilt=prebuilt)
            for k, v in case["kwargs"].items()
        }
        out = []
        d = kwargs.get("dim", args[1] if len(args) > 1 else -1)
        value = wire.encode_value(torch.softmax(args[0], d), out)
        result = {"kind": "returned", "value": value, "mutated": []}
        send(
            {"op": "case", "id": case["id"], "result": result, "ops": [], "seconds": 0.0, "token": token}, out
        )
    send({"op": "end", "token": token})
    os._exit(0)
