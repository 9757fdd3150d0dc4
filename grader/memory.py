"""How the batch's processes use memory: glibc's malloc settings, huge pages, a fresh heap for workers.

All of it is best effort: where the C library or the kernel cannot (not Linux, not glibc, no
transparent huge pages), the functions do nothing and grading works the same, only slower.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import sys
from typing import Any

#: glibc mallopt(3) parameters
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: madvise(2) advice: transparent huge pages for this range on its next faults / now (Linux >= 6.1)
MADV_HUGEPAGE, MADV_COLLAPSE = 14, 25
#: madvise(2): fault the whole range in, writable, in one call (Linux >= 5.14)
MADV_POPULATE_WRITE = 23
HUGE_PAGE = 2 << 20
#: what the fork-server sets aside for each worker's tensors (see prepare_fork_server)
WORKER_HEAP_MIB = 32
#: a batch's fork-server moves into huge pages once at least this many more submissions are
#: expected of it (grader.api): shorter runs would not repay the move
HUGE_PAGES_AHEAD = 40
#: huge pages warmed per fork-server at the start of a batch (it moves ~122 MiB into huge pages),
#: and at most in all: what one helper warms in the ~0.5 s the batch parent spends importing torch
WARM_MIB_PER_FORK_SERVER, WARM_MIB_MAX = 128, 256
#: request sizes that fill the fork-server's free blocks (see prepare_fork_server): halving from
#: 64 MiB to 1 KiB (what is left of a block goes to the next size), then every small chunk size
#: of glibc (16-byte steps: a request of n - 8 bytes takes a chunk of n)
_PLUG_SIZES = tuple(64 << 20 >> k for k in range(17)) + tuple(n - 8 for n in range(1008, 31, -16))


def keep_freed_memory() -> None:
    """Have glibc's malloc keep freed memory for the next allocation instead of returning it.

    A grading process receives, decodes and frees several MB of results per submission. By
    default glibc gives large blocks back to the kernel at once (``munmap``, heap trimming), and
    every new one then costs a page fault per 4 KiB: about 1,100 faults, 2 CPU-ms, per
    submission on a 2-core machine. With blocks under 64 MiB taken from the heap and up to
    256 MiB of free heap kept, about 250 are left. Processes forked afterwards inherit it. A libc
    without ``mallopt`` (not glibc) keeps its own ways.
    """
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, 64 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 256 << 20)


def _libc() -> Any:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.sbrk.restype = ctypes.c_void_p
    libc.sbrk.argtypes = [ctypes.c_ssize_t]
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.posix_memalign.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, ctypes.c_size_t]
    return libc


def huge_pages() -> int:
    """Move this process's private anonymous memory into 2 MiB pages (``MADV_COLLAPSE``); MiB moved.

    A forked child then inherits one page-table entry per 2 MiB instead of 512, and frees as few
    at exit: on this machine a worker's fork plus exit costs about 9 CPU-ms less. Pages the child
    writes are still copied 4 KiB at a time. The price: about 0.3 s once, and memory, since the
    collapsed pages become this process's own (about 170 MB for a fork-server that imported
    torch). Best effort: 0 where the kernel cannot (not Linux, no THP, an older kernel).
    """
    if sys.platform != "linux":
        return 0
    try:
        libc = _libc()
        with open("/proc/self/maps", encoding="ascii") as f:
            maps = f.read().splitlines()
    except (OSError, AttributeError):
        return 0
    moved = 0
    for line in maps:
        fields = line.split()
        # private, writable, not backed by a file: the heap and anonymous mappings (not the stack)
        if len(fields) < 5 or fields[4] != "0" or fields[1][1:4] != "w-p":
            continue
        if len(fields) > 5 and fields[5] != "[heap]":
            continue
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        lo, hi = (lo + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1), hi & ~(HUGE_PAGE - 1)
        if hi > lo and libc.madvise(lo, hi - lo, MADV_COLLAPSE) == 0:
            moved += hi - lo
    return moved >> 20


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
            "keepcost",
        )
    ]  # fmt: skip


#: in the fork-server: the blocks that fill its free holes, and the block set aside for the
#: workers (free, madvise: calls bound ahead of time; its address and size)
_plugs: list[int] = []
_worker_heap: tuple[Any, Any, int, int] | None = None


def _top(libc: Any) -> int:
    """Where the free top of the heap starts (``mallinfo2`` walks every free block: call it sparingly)."""
    return int(libc.sbrk(0)) - int(libc.mallinfo2().keepcost)


def prepare_fork_server(mib: int = WORKER_HEAP_MIB) -> tuple[int, int]:
    """In the fork-server, before a long batch: (MiB moved into huge pages, MiB set aside for workers).

    A worker's large tensors (outputs, intermediates: ~10 MB per submission) would otherwise land in
    memory the fork-server freed earlier: its pages are shared with the fork-server, and every
    4 KiB the worker writes is a copy-on-write fault (about 2,000 per submission). So:

    1. every free block is filled (allocated, never touched again), so no allocation of a worker
       lands in the fork-server's old memory (small ones: the C++ side of every new tensor);
    2. the free top of the heap goes back to the kernel;
    3. the rest moves into huge pages (:func:`huge_pages`);
    4. a block of ``mib`` MiB, aligned to 2 MiB, is allocated from the heap's new top and never
       touched: its pages do not exist yet (after step 3, which would have filled them).

    Each worker frees that block first thing (:func:`take_worker_heap`), marked for 2 MiB pages,
    so its large tensors come from fresh memory, a huge page per fault (~4 faults instead of
    ~2,000). Steps 1, 2 and 4 need glibc 2.33+ (``mallinfo2``); without it only step 3 is done.
    """
    global _worker_heap
    if sys.platform != "linux" or _worker_heap is not None:
        return huge_pages(), 0
    try:
        libc = _libc()
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):
        return huge_pages(), 0
    for size in _PLUG_SIZES:
        top = _top(libc)  # it moves only when a block comes from it: once per size
        while True:
            block = libc.malloc(size)
            if not block:
                break
            if block >= top:  # no free block of this size is left: this one came from the top
                libc.free(block)
                break
            _plugs.append(block)
    libc.malloc_trim(0)
    moved = huge_pages()
    n = mib << 20
    top = _top(libc)
    block = ctypes.c_void_p()
    if libc.posix_memalign(ctypes.byref(block), HUGE_PAGE, n) != 0 or not block.value:
        return moved, 0
    # the aligned block leaves a free block before it: fill that too, or a worker's first tensor
    # would start in it (old memory, 4 KiB pages), merged with the block when the worker frees it.
    # A request of its size may first get other free blocks before the aligned one (glibc's
    # caches, or that block merged with a small one before it and split): they are filled too,
    # as in step 1, until one comes from beyond the aligned block (nothing that size is left).
    lead = block.value - 16 - top  # glibc's chunk header is 16 bytes
    for _ in range(64 if lead >= 32 else 0):
        filler = libc.malloc(lead - 8)
        if not filler:
            break
        if filler > block.value:
            libc.free(filler)
            break
        _plugs.append(filler)
        if filler == top + 16:
            break
    _worker_heap = (libc.free, libc.madvise, block.value, n)
    return moved, mib


def take_worker_heap() -> None:
    """In a worker, before anything else: free the block its fork-server set aside for it, marked
    for transparent huge pages (see :func:`prepare_fork_server`)."""
    if _worker_heap is None:
        return
    free, madvise, block, size = _worker_heap
    madvise(block, size, MADV_HUGEPAGE)  # no huge pages (an error) still leaves fresh memory
    free(block)


def warm_huge_pages(mib: int) -> int:
    """Take ``mib`` MiB of memory in 2 MiB pages, write to all of it, and give it back; MiB warmed.

    On a virtual machine whose host takes back the memory its guest leaves free (free page
    reporting, in 2 MiB blocks: this Firecracker machine, and many cloud machines), a 2 MiB page
    the guest has not used lately costs ~4 ms of the host's page faults when it is next used.
    A fork-server's move into huge pages (:func:`prepare_fork_server`, ~61 pages) then takes
    ~0.4 s instead of ~0.04 s, once per grading process. Pages freed here are used before any
    the host took back, so a batch has its start-up helper call this while the parent imports
    torch (a core that would sit idle), and the fork-servers find warm pages. Elsewhere it costs
    the zeroing of the pages (~30 ms) on that idle core. Best effort: 0 where it cannot (not
    Linux, no transparent huge pages).
    """
    if sys.platform != "linux" or mib <= 0:
        return 0
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled", encoding="ascii") as f:
            if "[never]" in f.read():
                return 0
        libc = _libc()
        size = mib << 20
        block = mmap.mmap(-1, size + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    except (OSError, AttributeError):
        return 0
    try:
        start = ctypes.addressof(ctypes.c_char.from_buffer(block))
        aligned = (start + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1)
        libc.madvise(aligned, size, MADV_HUGEPAGE)
        if libc.madvise(aligned, size, MADV_POPULATE_WRITE) != 0:  # an older kernel: a write per page
            for offset in range(aligned - start, aligned - start + size, HUGE_PAGE):
                block[offset] = 1
    finally:
        block.close()  # (the exported address above is a plain int: nothing holds the buffer)
    return mib
