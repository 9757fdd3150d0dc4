"""Attack: write garbage straight into the worker's connection to the grader (every socket fd
it can find): a frame header announcing 4 GB, then random bytes.

Must get: losses.softmax ERROR ("malformed"), 0 points; the grader does not read 4 GB or crash,
and log_softmax, honest, PASSES in a fresh worker.
"""

import os
import stat
import struct

import torch


def softmax(acts, dim=-1):
    for fd in range(3, 64):
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.write(fd, struct.pack(">I", 0xFFFFFFF0) + os.urandom(4096))
        except OSError:
            pass
    return acts


def log_softmax(acts, dim=-1):
    m = acts.detach().amax(dim=dim, keepdim=True)
    s = acts - m
    return s - torch.log(torch.exp(s).sum(dim=dim, keepdim=True))
