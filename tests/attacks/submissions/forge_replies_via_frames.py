"""Attack: introspect the worker's own frames to find the runner's loop, read its reply token and
the whole run request, compute every answer with the forbidden torch.softmax, send forged replies
(with an empty op list) through the runner's own sender, and exit before the runner can reply
itself.

Must get: softmax FORBIDDEN, 0 points: the op list the worker sends is forged, but the kernel
probes (grader.probes) count torch's softmax kernel from outside the worker. The next exercise is
lost to the exit, nothing outside the worker is touched, and the parent's static scan flags the
frame introspection for review. Without kernel probes (not root, no BPF) this attack still earns
softmax's points: see the README's Security section.
"""

import os
import sys

import torch


def softmax(acts, dim=-1):
    frame = sys._getframe()
    while frame is not None and not {"token", "send", "header", "blobs"} <= frame.f_locals.keys():
        frame = frame.f_back
    if frame is None:
        raise RuntimeError("the runner's loop was not found")
    found = frame.f_locals
    wire = sys.modules["grader.wire"]
    request, blobs, send, token = found["header"], found["blobs"], found["send"], found["token"]
    cases, prebuilt = request.get("cases"), None
    if cases is None:  # a batch: the inputs were preloaded; the loop's own globals hold them
        plan_key, exercise = request["preloaded"]
        cases, blobs, prebuilt, _ = frame.f_globals["PRELOADED"][plan_key][exercise]
    for case in cases:
        args = [wire.decode_value(a, blobs, allow_path=True, prebuilt=prebuilt) for a in case["args"]]
        kwargs = {
            k: wire.decode_value(v, blobs, allow_path=True, prebuilt=prebuilt) for k, v in case["kwargs"].items()
        }
        out = []
        dim = kwargs.get("dim", args[1] if len(args) > 1 else -1)
        value = wire.encode_value(torch.softmax(args[0], dim), out)
        result = {"kind": "returned", "value": value, "mutated": []}
        send({"op": "case", "id": case["id"], "result": result, "ops": [], "seconds": 0.0, "token": token}, out)
    send({"op": "end", "token": token})
    os._exit(0)
