"""Kernel probes (grader.probes): the forbidden ops' kernels counted from outside the worker."""

from __future__ import annotations

import ctypes
import os
import select
import threading

import pytest
import torch

from grader import probes


def test_every_probed_kernel_is_found_in_this_torch() -> None:
    library = probes.torch_library()
    assert library is not None
    names = tuple(name for names in probes.PROBES.values() for name in names)
    found = probes.resolve(library, names)
    assert sorted(set(names) - set(found)) == []
    with open(library, "rb") as f:  # each offset is code: not the zeros of a data section
        for offset in found.values():
            f.seek(offset)
            assert f.read(4) != b"\0\0\0\0"


def test_resolve_finds_symbols_that_only_the_full_table_has() -> None:
    library = probes.torch_library()
    assert library is not None
    # a local (not exported) function: absent from .dynsym, present in .symtab
    found = probes.resolve(
        library, ("frame_dummy", "_ZN2at6native9logsumexpERKNS_6TensorEN3c108ArrayRefIlEEb")
    )
    assert set(found) == {"frame_dummy", "_ZN2at6native9logsumexpERKNS_6TensorEN3c108ArrayRefIlEEb"}
    assert found["frame_dummy"] != found["_ZN2at6native9logsumexpERKNS_6TensorEN3c108ArrayRefIlEEb"]


def test_resolve_leaves_out_unknown_symbols() -> None:
    library = probes.torch_library()
    assert library is not None
    assert probes.resolve(library, ("no_such_symbol_anywhere",)) == {}


def test_diff_keeps_only_what_ran() -> None:
    assert probes.diff({"_softmax": 2, "logsumexp": 1}, {"_softmax": 5, "logsumexp": 1, "x": 0}) == {
        "_softmax": 3
    }


def _exercise_kernels(go: int) -> None:
    torch.set_num_threads(1)  # a forked child must not start OpenMP threads (they can deadlock)
    os.read(go, 1)
    x = torch.randn(3, 4)
    torch.softmax(x, 1)
    torch.nn.functional.cross_entropy(x, torch.tensor([0, 1, 2]))
    torch.ops.aten._softmax.default(x, 0, False)
    thread = threading.Thread(target=lambda: torch.logsumexp(x, 1))
    thread.start()
    thread.join()


@pytest.mark.skipif(probes.unavailable() is not None, reason=str(probes.unavailable()))
def test_counter_counts_its_cgroup_threads_included_and_nothing_else() -> None:
    counter = probes.KernelCounter.start()
    try:
        torch.softmax(torch.randn(2, 2), 1)  # this process is not in the counted cgroup
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                _exercise_kernels(r)
            finally:
                os._exit(0)
        counter.adopt(pid)
        before = counter.read()
        os.write(w, b"x")
        os.waitpid(pid, 0)
        ran = probes.diff(before, counter.read())
        assert ran.get("_softmax") == 2
        assert ran.get("_log_softmax") == 1 and ran.get("nll_loss_forward") == 1
        assert ran.get("cross_entropy_loss") == 1
        assert ran.get("logsumexp", 0) >= 1  # counted in the other thread
        assert "_sparse_softmax" not in ran
    finally:
        counter.close()
    assert not os.path.exists(counter.cgroup)


@pytest.mark.skipif(probes.unavailable() is not None, reason=str(probes.unavailable()))
def test_sealed_torch_code_cannot_be_made_writable() -> None:
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            if probes.seal_code():
                libc = ctypes.CDLL(None, use_errno=True)
                with open("/proc/self/maps") as f:
                    text = next(line for line in f if "libtorch_cpu.so" in line and "x" in line.split()[1])
                start = int(text.split("-")[0], 16)
                refused = libc.mprotect(ctypes.c_void_p(start), 4096, 7) != 0
                code = 0 if refused and ctypes.get_errno() == 1 else 1  # EPERM
            else:
                code = 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 2:
        pytest.skip("this kernel has no mseal (Linux 6.10+)")
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.skipif(probes.unavailable() is not None, reason=str(probes.unavailable()))
def test_a_batch_keeps_one_submission_counted_at_a_time_and_its_spare_worker_counts_nothing() -> None:
    """A batch forks the next worker while the current one runs, and lets the last one exit while
    the next submission starts: the spare's set-up must hit no probed kernel, and a student's
    forbidden call must land in that student's report only."""
    from conftest import ZOO

    from grader.api import Grader
    from grader.model import Status
    from grader.settings import Settings

    with Grader(Settings(timeout=5, import_timeout=5, figures=False)) as grader:
        grader.preload()
        counter = grader.zygote.counter
        assert counter is not None
        before = counter.read()
        honest = grader.grade_path(ZOO / "all_correct.py")
        spare = grader._spare
        assert spare is not None
        readable, _, _ = select.select([spare.sock], [], [], 10.0)  # its hello: set up, now idle
        assert readable
        # the honest solution calls no forbidden kernel: nothing was counted, spare included
        assert probes.diff(before, counter.read()) == {}
        cheat = grader.grade_path(ZOO / "forbidden_getattr.py")
        after = grader.grade_path(ZOO / "all_correct.py")
    assert honest.to_dict() == after.to_dict()
    assert honest.score == honest.max_score
    assert any(e.status is Status.FORBIDDEN for e in cheat.exercises)
