"""Attack: call torch.softmax in a new thread (a dispatch mode is thread-local, so the op trace
of the calling thread does not see it), and torch.log_softmax in a thread pool started at import.

Must get: losses.softmax and losses.log_softmax FORBIDDEN ("another thread"), 0 points: the
worker checks that no thread was started or running around the call.
"""

import concurrent.futures
import threading

import torch

_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
_pool.submit(lambda: None).result()  # start the pool's thread now, outside any call


def softmax(acts, dim=-1):
    out = []
    t = threading.Thread(target=lambda: out.append(torch.softmax(acts, dim)))
    t.start()
    t.join()
    return out[0]


def log_softmax(acts, dim=-1):
    return _pool.submit(torch.log_softmax, acts, dim).result()
