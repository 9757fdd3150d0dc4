"""Kernel probes: the forbidden-op verdict counted outside the student's process.

The op trace (:mod:`grader.runner`) runs inside the worker, so code that walks the worker's own
frames can forge its report. This module counts, from the trusted grading process, how often
the CPU kernels behind the forbidden ops ran in the worker, with no help from the worker:

* a uprobe on each kernel's entry in ``libtorch_cpu.so`` (one ``uprobe_multi`` BPF link);
* a tiny BPF program that adds one to the kernel's slot of a counter array when the process
  that hit the probe sits in this grader's own cgroup (the fork-server's; every worker it forks
  inherits it, threads included);
* the array is mapped read-only into the grading process: a read costs no system call.

The worker cannot reach any of it: the program, link and map belong to the grading process,
the worker cannot leave its cgroup (no cgroup file system in its root, no privileges), the
fork-server seals ``libtorch_cpu.so``'s code with ``mseal`` (no ``mprotect`` can lift the
breakpoints), and the worker has no ``/proc`` (no writes through ``/proc/self/mem``).

Needs Linux with BPF ``uprobe_multi`` links (6.6+), root (``CAP_BPF`` + ``CAP_PERFMON``) and a
writable cgroup v2 hierarchy; elsewhere :meth:`KernelCounter.start` raises :class:`ProbeError`
with the reason (:func:`unavailable` gives it up front), and the in-worker op trace is all there
is (the report's layers say which).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import itertools
import mmap
import os
import struct
import sys
from collections.abc import Iterable
from pathlib import Path

#: aten op name -> the CPU kernels (mangled symbols in libtorch_cpu.so) that do its work. Every
#: route to the op's values (functional, ``out=``, method, ``torch.ops.aten``, autograd, another
#: thread) ends in one of them.
PROBES: dict[str, tuple[str, ...]] = {
    "_softmax": ("_ZN2at6native26structured_softmax_cpu_out4implERKNS_6TensorElbS4_",),
    "_log_softmax": ("_ZN2at6native30structured_log_softmax_cpu_out4implERKNS_6TensorElbS4_",),
    "_sparse_softmax": ("_ZN2at6native18softmax_sparse_cpuERKNS_6TensorElb",),
    "_sparse_log_softmax": ("_ZN2at6native22log_softmax_sparse_cpuERKNS_6TensorElb",),
    "_masked_softmax": ("_ZN2at6native18masked_softmax_cpuERKNS_6TensorES3_St8optionalIlES5_",),
    "_scaled_dot_product_flash_attention_for_cpu": (
        "_ZN2at6native39_scaled_dot_product_flash_attention_cpuERKNS_6TensorES3_S3_dbRKSt8optionalIS1_ES4_IdE",
    ),
    "logsumexp": (
        "_ZN2at6native9logsumexpERKNS_6TensorEN3c108ArrayRefIlEEb",
        "_ZN2at6native13logsumexp_outERKNS_6TensorEN3c108ArrayRefIlEEbRS1_",
    ),
    "nll_loss_forward": (
        "_ZN2at6native35structured_nll_loss_forward_out_cpu4implERKNS_6TensorES4_NS_17OptionalTensorRefEllS4_S4_",
    ),
    "nll_loss2d_forward": (
        "_ZN2at6native22nll_loss2d_forward_cpuERKNS_6TensorES3_RKSt8optionalIS1_Ell",
        "_ZN2at6native26nll_loss2d_forward_out_cpuERKNS_6TensorES3_RKSt8optionalIS1_EllRS1_S8_",
    ),
    "cross_entropy_loss": (
        "_ZN2at6native25cross_entropy_loss_symintERKNS_6TensorES3_RKSt8optionalIS1_ElN3c106SymIntEd",
    ),
}

#: Ops with no probe of their own whose values can only come from a probed kernel (the op on the
#: right): counting that kernel covers them too.
COVERED_BY: dict[str, str] = {"_safe_softmax": "_softmax"}

LAYER = "kernel-probes"

_SYS_BPF = {"x86_64": 321, "aarch64": 280}
_SYS_MSEAL = 462  # the same number on every architecture
_BPF_MAP_CREATE, _BPF_PROG_LOAD, _BPF_LINK_CREATE = 0, 5, 28
_BPF_MAP_TYPE_ARRAY, _BPF_F_MMAPABLE = 2, 1 << 10
_BPF_PROG_TYPE_KPROBE, _BPF_TRACE_UPROBE_MULTI = 2, 48
_HELPER_MAP_LOOKUP, _HELPER_CGROUP_ID, _HELPER_ATTACH_COOKIE = 1, 80, 174
_cgroups = itertools.count()


class ProbeError(OSError):
    """The kernel refused a step of setting up the probes."""


def torch_library() -> str | None:
    """The path of ``libtorch_cpu.so`` of the torch this interpreter imports (without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "lib" / "libtorch_cpu.so"
    return str(path) if path.is_file() else None


@functools.lru_cache(maxsize=4)
def resolve(path: str, names: tuple[str, ...]) -> dict[str, int]:
    """File offsets of the named symbols in an ELF64 little-endian shared object (missing: left out).

    The exported symbols (``.dynsym``, whose names take 5 MB in libtorch_cpu.so) are searched
    first; the full symbol table (``.symtab``, 76 MB of names) only for what is not exported.
    """
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            return {}
        (phoff, shoff) = struct.unpack_from("<QQ", data, 0x20)
        phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 0x36)
        sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
        segments = [struct.unpack_from("<IIQQQQQQ", data, phoff + i * phentsize) for i in range(phnum)]
        loads = [(p[3], p[2], p[5]) for p in segments if p[0] == 1]  # (vaddr, offset, filesz) of PT_LOAD
        found: dict[str, int] = {}
        for kind in (11, 2):  # DYNSYM, then SYMTAB
            for table in (s for s in sections if s[1] == kind):
                wanted = [n for n in names if n not in found]
                if wanted:
                    found.update(_lookup(data, sections, table, wanted, loads))
        return found


def _lookup(
    data: mmap.mmap,
    sections: list[tuple[int, ...]],
    table: tuple[int, ...],
    names: list[str],
    loads: list[tuple[int, int, int]],
) -> dict[str, int]:
    """File offsets of ``names`` defined in one symbol table section."""
    import numpy as np

    strtab = sections[table[6]]
    strings = data[strtab[4] : strtab[4] + strtab[5]]
    entry = np.dtype(
        [
            ("name", "<u4"),
            ("info", "u1"),
            ("other", "u1"),
            ("shndx", "<u2"),
            ("value", "<u8"),
            ("size", "<u8"),
        ]
    )
    symbols = np.frombuffer(data, dtype=entry, count=table[5] // 24, offset=table[4])
    found: dict[str, int] = {}
    for name in names:
        at = strings.find(b"\0" + name.encode() + b"\0")
        if at < 0:
            continue
        values = symbols["value"][symbols["name"] == at + 1]
        values = values[values != 0]
        if not len(values):
            continue
        address = int(values[0])
        for vaddr, offset, size in loads:
            if vaddr <= address < vaddr + size:
                found[name] = address - vaddr + offset
    del symbols
    return found


def _cgroup2_mount() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            if right.split(" ", 1)[0] == "cgroup2":
                return left.split(" ")[4]
    return None


_PREFIX = "imgclass-kit-"


def _remove_stale_cgroups(mount: str) -> None:
    """Remove the empty cgroups of graders that died without cleaning up (their pid is gone)."""
    with contextlib.suppress(OSError):
        for name in os.listdir(mount):
            owner = name[len(_PREFIX) :].split("-")[0] if name.startswith(_PREFIX) else ""
            if owner.isdigit() and not os.path.exists(f"/proc/{owner}"):
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(mount, name))  # refused while a process is still in it


def unavailable() -> str | None:
    """Why kernel probes cannot run here, or None if they may (the kernel has the final word)."""
    if sys.platform != "linux" or os.uname().machine not in _SYS_BPF:
        return f"kernel probes need Linux on x86_64 or aarch64; this is {sys.platform} {os.uname().machine}"
    if os.geteuid() != 0:
        return "kernel probes need root (CAP_BPF and CAP_PERFMON)"
    if _cgroup2_mount() is None:
        return "kernel probes need a cgroup v2 hierarchy"
    if torch_library() is None:
        return "libtorch_cpu.so was not found"
    return None


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _ld64(dst: int, value: int, src: int = 0) -> bytes:
    return _insn(0x18, dst, src, 0, value & 0xFFFFFFFF) + _insn(0, imm=(value >> 32) & 0xFFFFFFFF)


def _program(cgroup_id: int, map_fd: int) -> bytes:
    """counts[cookie] += 1 when the current task's cgroup is ``cgroup_id``."""
    out = 16  # instruction slot of the exit path
    code = [
        _insn(0xBF, 6, 1),  # r6 = ctx
        _insn(0x85, imm=_HELPER_CGROUP_ID),  # r0 = the current task's cgroup id
        _ld64(1, cgroup_id),  # r1 = ours (2 slots: 2, 3)
        _insn(0x5D, 0, 1, off=out - 5),  # 4: if r0 != r1 goto out
        _insn(0xBF, 1, 6),  # r1 = ctx
        _insn(0x85, imm=_HELPER_ATTACH_COOKIE),  # r0 = the probe's index
        _insn(0x63, 10, 0, off=-4),  # *(u32 *)(fp - 4) = r0
        _ld64(1, map_fd, src=1),  # r1 = the counter array (2 slots: 8, 9)
        _insn(0xBF, 2, 10),  # r2 = fp
        _insn(0x07, 2, imm=-4),  # r2 -= 4
        _insn(0x85, imm=_HELPER_MAP_LOOKUP),  # 12: r0 = &counts[index]
        _insn(0x15, 0, off=out - 14),  # 13: if r0 == 0 goto out
        _insn(0xB7, 1, imm=1),  # r1 = 1
        _insn(0xDB, 0, 1),  # 15: lock *(u64 *)r0 += r1
        _insn(0xB7, 0, imm=0),  # 16 (out): r0 = 0
        _insn(0x95),  # exit
    ]
    return b"".join(code)


class _Bpf:
    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.syscall.restype = ctypes.c_long
        self.number = _SYS_BPF[os.uname().machine]

    def __call__(self, cmd: int, attr: ctypes.Array[ctypes.c_uint8], what: str) -> int:
        fd = int(self.libc.syscall(self.number, cmd, ctypes.byref(attr), ctypes.sizeof(attr)))
        if fd < 0:
            err = ctypes.get_errno()
            raise ProbeError(err, f"{what}: {os.strerror(err)}")
        return fd


class KernelCounter:
    """Counts the probed kernels run by the processes of one cgroup (a fork-server and its workers)."""

    def __init__(self, cgroup: str, ops: dict[str, list[int]], fds: list[int], counts: mmap.mmap) -> None:
        self.cgroup = cgroup
        self.ops = tuple(ops)
        self._slots = ops  # op -> its probes' slots in the counter array
        self._fds = fds
        self._counts = counts
        self._size = max((s for slots in ops.values() for s in slots), default=-1) + 1

    @classmethod
    def start(cls) -> KernelCounter:
        """Create the cgroup, the counter array, the BPF program and the probes. Raises ProbeError."""
        why = unavailable()
        if why is not None:
            raise ProbeError(0, why)
        library = torch_library()
        assert library is not None
        names = tuple(name for names in PROBES.values() for name in names)
        offsets = resolve(library, names)
        slots: dict[str, list[int]] = {}
        probe_offsets: list[int] = []
        for op, symbols in PROBES.items():
            for symbol in symbols:
                if symbol in offsets:
                    slots.setdefault(op, []).append(len(probe_offsets))
                    probe_offsets.append(offsets[symbol])
        if not probe_offsets:
            raise ProbeError(0, f"none of the probed kernels was found in {library}")
        mount = _cgroup2_mount()
        assert mount is not None
        _remove_stale_cgroups(mount)
        cgroup = os.path.join(mount, f"{_PREFIX}{os.getpid()}-{next(_cgroups)}")
        try:
            os.mkdir(cgroup, 0o700)
        except OSError as e:
            raise ProbeError(e.errno or 0, f"cannot create a cgroup: {e}") from None
        fds: list[int] = []
        bpf = _Bpf()
        try:
            n = len(probe_offsets)
            attr = (ctypes.c_uint8 * 128)()
            struct.pack_into("<IIIII", attr, 0, _BPF_MAP_TYPE_ARRAY, 4, 8, n, _BPF_F_MMAPABLE)
            map_fd = bpf(_BPF_MAP_CREATE, attr, "create the counter array")
            fds.append(map_fd)
            code = _program(os.stat(cgroup).st_ino, map_fd)
            insns = ctypes.create_string_buffer(code, len(code))
            license_ = ctypes.create_string_buffer(b"GPL")
            attr = (ctypes.c_uint8 * 160)()
            struct.pack_into(
                "<IIQQ",
                attr,
                0,
                _BPF_PROG_TYPE_KPROBE,
                len(code) // 8,
                ctypes.addressof(insns),
                ctypes.addressof(license_),
            )
            struct.pack_into("<I", attr, 68, _BPF_TRACE_UPROBE_MULTI)  # expected_attach_type
            prog_fd = bpf(_BPF_PROG_LOAD, attr, "load the counting program")
            fds.append(prog_fd)
            path = ctypes.create_string_buffer(os.fsencode(library))
            offsets_array = (ctypes.c_uint64 * n)(*probe_offsets)
            cookies = (ctypes.c_uint64 * n)(*range(n))
            attr = (ctypes.c_uint8 * 128)()
            struct.pack_into("<IIII", attr, 0, prog_fd, 0, _BPF_TRACE_UPROBE_MULTI, 0)
            struct.pack_into(
                "<QQQQIII", attr, 16, ctypes.addressof(path), ctypes.addressof(offsets_array), 0,
                ctypes.addressof(cookies), n, 0, 0,
            )  # fmt: skip
            fds.append(bpf(_BPF_LINK_CREATE, attr, "attach the probes"))
            counts = mmap.mmap(
                map_fd, mmap.PAGESIZE * ((8 * n + mmap.PAGESIZE - 1) // mmap.PAGESIZE), prot=mmap.PROT_READ
            )
        except BaseException:
            for fd in fds:
                os.close(fd)
            with contextlib.suppress(OSError):
                os.rmdir(cgroup)
            raise
        return cls(cgroup, slots, fds, counts)

    def adopt(self, pid: int) -> None:
        """Move a process (the fork-server, before it forks any worker) into the counted cgroup."""
        with open(os.path.join(self.cgroup, "cgroup.procs"), "w") as f:
            f.write(str(pid))

    def read(self) -> dict[str, int]:
        """Hits so far per probed op, since the counter started."""
        values = struct.unpack_from(f"<{self._size}Q", self._counts, 0)
        return {op: sum(values[s] for s in slots) for op, slots in self._slots.items()}

    def close(self) -> None:
        """Detach the probes; remove the cgroup once it is empty (call after the fork-server exited)."""
        if self._fds:
            self._counts.close()
            for fd in self._fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._fds = []
        with contextlib.suppress(OSError):
            os.rmdir(self.cgroup)


def diff(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """The ops that ran between two reads, with how often."""
    return {op: n - before.get(op, 0) for op, n in after.items() if n > before.get(op, 0)}


def seal_code(library_names: Iterable[str] = ("libtorch_cpu.so",)) -> bool:
    """Seal the executable mappings of the named libraries in this process (``mseal``, Linux 6.10+).

    A sealed mapping cannot be ``mprotect``-ed, unmapped or replaced, here or in any process
    forked from here, so no worker can make torch's code writable to lift a probe's breakpoint.
    """
    if sys.platform != "linux":
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    sealed = False
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or "x" not in fields[1] or not any(fields[5].endswith(n) for n in library_names):
            continue
        low, high = (int(x, 16) for x in fields[0].split("-"))
        if (
            libc.syscall(_SYS_MSEAL, ctypes.c_void_p(low), ctypes.c_size_t(high - low), ctypes.c_ulong(0))
            == 0
        ):
            sealed = True
    return sealed
