"""The fork-server's memory set-up for long batches (grader.memory)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from conftest import run_python

#: A fork-server in miniature: torch imported, large blocks allocated and freed (holes and a used
#: top, as after decoding a plan's inputs), then a worker forked that writes a 16 MiB tensor.
#: Prints the worker's page faults for it, without and with the fresh heap.
FORK_SERVER = r"""
import json, os, resource, sys
import torch
from grader import memory

torch.set_num_threads(1)
memory.keep_freed_memory()
kept = [torch.ones(300_000) for _ in range(8)]   # live blocks between the holes
for i in range(0, 8, 2):
    kept[i] = None                               # 1.2 MB holes
scratch = [torch.ones(4_000_000) for _ in range(3)]
del scratch                                      # a used, free top

def fallbacks():
    # huge page faults the kernel served with 4 KiB pages (it may: memory fragmented, say)
    try:
        with open("/proc/vmstat") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("thp_fault_fallback "))
    except (OSError, StopIteration):
        return 0

def worker_faults(take):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        if take:
            memory.take_worker_heap()
        fell = fallbacks()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = torch.empty(16 << 20, dtype=torch.uint8)
        t.fill_(1)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        os.write(write, f"{faults} {fallbacks() - fell}".encode())
        os._exit(0)
    os.close(write)
    faults, fell = map(int, os.read(read, 64).split())
    os.waitpid(pid, 0)
    return faults, fell

plain, _ = worker_faults(False)
moved, reserved = memory.prepare_fork_server()
again = memory.prepare_fork_server()[1]
fresh, fell = worker_faults(True)
print(json.dumps({"plain": plain, "fresh": fresh, "fell_back": fell, "reserved": reserved, "again": again}))
"""


def _thp() -> str:
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return "never"
    return text.split("[", 1)[1].split("]", 1)[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_a_worker_writes_its_large_tensors_into_fresh_huge_pages():
    """Without the fresh heap, each 4 KiB of a worker's 16 MiB tensor is a page fault (copy-on-write
    where it lands in the fork-server's old memory): 4,096 and more. With it, about one per 2 MiB
    plus the worker's own start: ~120 here, and ~630 in about one run of four, where one of the
    eight 2 MiB ranges is still served in 4 KiB pages (a range the kernel reports as a fallback is
    counted as one fault). Hence the margin: under half of the pages."""
    out = run_python(FORK_SERVER, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    pages = (16 << 20) // 4096
    if figures["reserved"] == 0:
        pytest.skip("no glibc mallinfo2 here: the fresh heap is not set aside")
    assert figures["again"] == 0  # set aside once per fork-server
    assert figures["plain"] > 0.9 * pages, figures
    if _thp() == "never":
        assert figures["fresh"] > 0.9 * pages, figures  # fresh memory, but in 4 KiB pages
    else:  # each 2 MiB the kernel could not give as one page costs 512 faults, not 1
        assert figures["fresh"] - 511 * figures["fell_back"] < 0.5 * pages, figures


WARM = r"""
import json
from grader import memory

def vmstat(key):
    with open("/proc/vmstat") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + " "))

def rss_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

before, huge = rss_kib(), vmstat("thp_fault_alloc")
warmed = memory.warm_huge_pages(64)
print(json.dumps({"warmed": warmed, "huge_faults": vmstat("thp_fault_alloc") - huge,
                  "kept_kib": rss_kib() - before, "none": memory.warm_huge_pages(0)}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_warming_takes_huge_pages_and_gives_them_back():
    """The start-up helper's warming: 64 MiB taken in 2 MiB pages (32 huge page faults at least:
    the counter is the whole machine's, so others may add to it), every page written, then all of
    it given back (the process's resident memory does not grow by it)."""
    if _thp() == "never":
        pytest.skip("no transparent huge pages here")
    out = run_python(WARM)
    assert out.returncode == 0, out.stderr[-2000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["warmed"] == 64 and figures["none"] == 0, figures
    assert figures["huge_faults"] >= 32, figures
    assert figures["kept_kib"] < 8 << 10, figures
