"""The process boundary: timeouts, crashes, exits, forbidden calls, mutation, and their messages."""

from __future__ import annotations

import contextlib

import pytest
import torch
from conftest import ZOO

from grader.model import Status
from grader.testing import plan_for


def test_infinite_loop_is_cut_at_the_timeout(grader):
    report = grader.grade_path(ZOO / "infinite_loop.py")
    softmax = report.exercise("losses.softmax")
    assert softmax.status is Status.TIMEOUT
    assert "took longer than" in softmax.message
    assert softmax.score == 0
    others = [e for e in report.exercises if e.id != "losses.softmax"]
    assert {e.status for e in others} == {Status.NOT_ATTEMPTED}


def test_segfault_costs_only_that_exercise(grader):
    report = grader.grade_path(ZOO / "crash_segfault.py")
    softmax = report.exercise("losses.softmax")
    assert softmax.status is Status.ERROR
    assert "SIGSEGV" in softmax.message
    assert softmax.cases[0].status is Status.ERROR
    assert softmax.cases[1].status is Status.SKIPPED


def test_sys_exit_in_one_function_keeps_the_others(grader):
    report = grader.grade_path(ZOO / "exit_in_function.py")
    softmax = report.exercise("losses.softmax")
    assert softmax.status is Status.ERROR
    assert "SystemExit" in softmax.cases[0].message
    assert report.exercise("losses.log_softmax").status is Status.PASSED


def test_exit_at_import_is_an_error_for_every_exercise(grader):
    report = grader.grade_path(ZOO / "os_exit_at_import.py")
    assert {e.status for e in report.exercises} == {Status.ERROR}
    assert "importing os_exit_at_import.py ended the worker" in report.exercises[0].message


def test_student_exception_shows_the_students_line(grader):
    report = grader.grade_path(ZOO / "raises.py")
    case = report.exercise("losses.softmax").cases[0]
    assert case.status is Status.ERROR
    assert case.message.startswith("raised ZeroDivisionError")
    assert case.traceback and case.traceback[-1].file == "raises.py"
    assert case.traceback[-1].line == 5


@pytest.mark.parametrize(
    ("zoo", "exercise", "called"),
    [
        ("forbidden_softmax.py", "losses.softmax", "torch.softmax"),
        ("forbidden_getattr.py", "losses.softmax", "torch.softmax"),
        ("forbidden_log_softmax_logsumexp.py", "losses.log_softmax", "torch.logsumexp"),
        ("forbidden_ce.py", "losses.cross_entropy", "F."),
    ],
)
def test_forbidden_calls_are_caught_at_run_time(grader, zoo, exercise, called):
    result = grader.grade_path(ZOO / zoo).exercise(exercise)
    assert result.status is Status.FORBIDDEN
    assert result.score == 0
    assert result.message.startswith("implement it yourself")
    assert called in result.message


def test_own_helpers_are_allowed_in_cross_entropy(grader):
    report = grader.grade_path(ZOO / "ce_uses_own_functions.py")
    for eid in ("losses.log_softmax", "losses.nll_loss", "losses.cross_entropy"):
        assert report.exercise(eid).status is Status.PASSED


def test_mutated_input_does_not_change_the_reference(grader):
    before = [
        (
            pc.expected.value.clone(),
            [a.value.clone() for a in pc.call.args if isinstance(a.value, torch.Tensor)],
        )
        for pc in grader.plan.exercises[5].cases
    ]
    assert grader.plan.exercises[5].exercise.id == "losses.softmax"
    mutant = grader.grade_path(ZOO / "mutates_input.py").exercise("losses.softmax")
    assert mutant.status is Status.FAILED
    assert any("changed its input in place" in c.message for c in mutant.cases)
    for (expected, args), pc in zip(before, grader.plan.exercises[5].cases):
        assert torch.equal(expected.nan_to_num(), pc.expected.value.nan_to_num())
        for a, b in zip(args, [x.value for x in pc.call.args if isinstance(x.value, torch.Tensor)]):
            assert torch.equal(a, b)
    assert grader.grade_path(ZOO / "all_correct.py").exercise("losses.softmax").status is Status.PASSED


def test_hard_coded_lesson_output_earns_nothing(grader):
    result = grader.grade_path(ZOO / "hardcoded_lesson.py").exercise("losses.softmax")
    lesson = next(c for c in result.cases if c.id == "lesson-6x2")
    assert lesson.status is Status.PASSED and lesson.weight == 0
    assert result.score == 0


def test_notebook_submission(grader):
    report = grader.grade_path(ZOO / "notebook_all.ipynb")
    assert all(e.status is Status.PASSED for e in report.exercises)
    assert any("%matplotlib inline" in w for w in report.warnings)
    assert any("skipped" in w and "exploration code" in w for w in report.warnings)


def test_hidden_seed_adds_cases_the_public_seed_never_showed():
    from grader import specs
    from grader.engine import build_plan
    from grader.settings import Settings

    public = build_plan(specs.select(["losses.softmax"]), Settings())
    hidden = build_plan(specs.select(["losses.softmax"]), Settings(hidden_seed=987654321))
    pub_ids = {pc.id for pc in public.exercises[0].cases}
    hid = [pc for pc in hidden.exercises[0].cases if pc.hidden]
    assert hid and all(pc.id.startswith("hidden-") and pc.id not in pub_ids for pc in hid)
    assert all(pc.recipe == "" for pc in hid)
    by_id = {pc.id: pc for pc in public.exercises[0].cases}
    random_case = next(pc for pc in hid if pc.id == "hidden-random-4x3")
    assert not torch.equal(random_case.call.args[0].value, by_id["random-4x3"].call.args[0].value)


def test_adding_a_case_never_reshuffles_the_others():
    from grader.seeds import case_seed

    assert case_seed(1, "losses.softmax", "random-4x3") == case_seed(1, "losses.softmax", "random-4x3")
    assert case_seed(1, "losses.softmax", "random-4x3") != case_seed(1, "losses.softmax", "dim-0")
    assert plan_for("losses.softmax").exercises[0].cases[4].id == "random-4x3"


def test_memory_filled_through_a_global_is_named(grader):
    softmax = grader.grade_path(ZOO / "memory_global.py").exercise("losses.softmax")
    assert softmax.status is Status.ERROR
    assert softmax.score == 0
    assert "MemoryError" in softmax.cases[0].message or "out of memory" in softmax.cases[0].message
    assert "sys.exit" not in softmax.message


@pytest.mark.parametrize(
    "zoo",
    [
        "all_correct.py",
        "mutates_input.py",
        "nll_wrong_indexing.py",
        "crash_segfault.py",
        "forbidden_getattr.py",
    ],
)
def test_preloaded_inputs_grade_exactly_like_inputs_sent_per_submission(zoo):
    from grader.api import Grader
    from grader.settings import Settings

    settings = Settings(timeout=5, import_timeout=5, figures=False)
    with Grader(settings) as sent, Grader(settings, zygote_mode="spawn") as preloaded:
        preloaded.preload()
        assert preloaded.plan.preloaded is not None and sent.plan.preloaded is None
        a = sent.grade_path(ZOO / zoo).to_dict()
        b = preloaded.grade_path(ZOO / zoo).to_dict()
    assert a == b


def test_a_grader_bug_becomes_a_crash_report_and_stops_the_worker(grader, monkeypatch):
    from grader import engine

    def broken_judge(pe, raw, settings):
        raise RuntimeError("judge bug")

    monkeypatch.setattr(engine, "judge", broken_judge)
    report = grader.grade_path(ZOO / "all_correct.py")
    assert report.crash is not None and "judge bug" in report.crash
    assert report.score == 0
    assert grader.zygote.request({"op": "ping"})["children"] == 0


def test_preloaded_inputs_are_shared_and_a_mutated_one_is_renewed_for_later_calls():
    import torch

    from grader import runner, wire

    blobs: list[bytes] = []
    encoded = wire.encode_value(torch.arange(6.0).reshape(2, 3), blobs)
    case = {"id": "c", "args": [encoded], "kwargs": {}}
    runner.preload("test-shared", "ex", [case], blobs)
    _, blobs, pristine, shared = runner.PRELOADED.pop("test-shared")["ex"]
    seen: list[torch.Tensor] = []

    def clobber(x):
        seen.append(x)
        x.mul_(0)
        return x.sum()

    first, _ = runner.call_case(clobber, case, blobs, set(), traced=False, prebuilt=pristine, shared=shared)
    assert seen[0] is not pristine[0], "the call must never get the pristine tensor"
    assert first["result"]["mutated"] == [0]
    assert torch.equal(pristine[0], torch.arange(6.0).reshape(2, 3))
    second, out = runner.call_case(
        clobber, case, blobs, set(), traced=False, prebuilt=pristine, shared=shared
    )
    assert second["result"]["mutated"] == [0]
    assert seen[1] is not seen[0], "a tensor changed in place is replaced before the next call"
    assert float(wire.decode_value(second["result"]["value"], out)) == 0.0

    def reader(x):
        seen.append(x)
        return x.sum()

    third, out = runner.call_case(reader, case, blobs, set(), traced=False, prebuilt=pristine, shared=shared)
    assert third["result"]["mutated"] == []
    assert float(wire.decode_value(third["result"]["value"], out)) == 15.0
    runner.call_case(reader, case, blobs, set(), traced=False, prebuilt=pristine, shared=shared)
    assert seen[-1] is seen[-2], "an untouched input is handed over as it is, without a copy"


def _thp_available() -> bool:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[never]" not in f.read()
    except OSError:
        return False


@pytest.mark.skipif(not _thp_available(), reason="no transparent huge pages here")
def test_a_batch_moves_the_fork_server_into_huge_pages_and_grades_the_same(monkeypatch):
    from grader import api
    from grader.settings import Settings

    monkeypatch.setattr(api, "HUGE_PAGES_AFTER", 1)
    settings = Settings(timeout=5, import_timeout=5, figures=False)
    with api.Grader(settings) as grader:
        grader.preload()
        first = grader.grade_path(ZOO / "all_correct.py").to_dict()
        assert grader.huge_pages_mib is None
        second = grader.grade_path(ZOO / "most_confused_ascending.py").to_dict()
        if grader.huge_pages_mib == 0:
            pytest.skip("this kernel cannot collapse into huge pages (MADV_COLLAPSE: Linux >= 6.1)")
        assert grader.huge_pages_mib is not None and grader.huge_pages_mib >= 64
        with open(f"/proc/{grader.zygote.pid}/smaps") as f:
            huge_kib = sum(int(line.split()[1]) for line in f if line.startswith("AnonHugePages:"))
        assert huge_kib >= 64 << 10
        assert grader.grade_path(ZOO / "all_correct.py").to_dict() == first
        assert grader.grade_path(ZOO / "most_confused_ascending.py").to_dict() == second
    assert first["score"] == first["max_score"] and second["score"] < second["max_score"]


@contextlib.contextmanager
def _grader_counting_huge_pages(monkeypatch):
    """A batch Grader whose fork-server only counts the moves into huge pages it is asked for."""
    from grader import api
    from grader.settings import Settings
    from grader.submission import read_submission

    asked: list[bool] = []
    settings = Settings(timeout=5, import_timeout=5, figures=False)
    with api.Grader(settings) as grader:
        monkeypatch.setattr(grader.zygote, "huge_pages", lambda: asked.append(True) or 1)
        grader.preload()
        yield grader, asked, read_submission(ZOO / "all_correct.py", grader.modules)


def test_a_batch_that_says_it_is_short_keeps_the_fork_server_as_it_is(monkeypatch):
    from grader import api

    with _grader_counting_huge_pages(monkeypatch) as (grader, asked, sub):
        for left in range(api.HUGE_PAGES_AFTER + 2, 0, -1):  # more than HUGE_PAGES_AFTER, all said short
            grader.grade_submission(sub, ahead=min(left, api.HUGE_PAGES_AHEAD - 1))
        assert asked == [] and grader.huge_pages_mib is None
        grader.grade_submission(sub, ahead=api.HUGE_PAGES_AHEAD)
        assert asked == [True] and grader.huge_pages_mib == 1


def test_a_long_batch_moves_into_huge_pages_only_after_its_first_result(monkeypatch):
    from grader import api
    from grader.batch.tasks import probe_layers

    with _grader_counting_huge_pages(monkeypatch) as (grader, asked, sub):
        probe_layers(grader)  # what a grading process runs at start-up: it says nothing of the batch
        grader.grade_submission(sub, ahead=api.HUGE_PAGES_AHEAD + 10)
        assert asked == [], "the batch's first result comes first"
        grader.grade_submission(sub, ahead=api.HUGE_PAGES_AHEAD + 9)
        assert asked == [True]


@pytest.mark.parametrize("tags", [True, False], ids=["version-tags", "identities"])
def test_the_workers_integrity_check_names_what_was_patched(monkeypatch, tags):
    """Before each reply the worker checks its own namespaces (grader.runner._make_integrity_check)."""
    import builtins

    from grader import runner, wire

    if not tags:
        monkeypatch.setattr(runner, "_version_tag_reader", lambda: None)
    elif runner._version_tag_reader() is None:
        pytest.skip("this Python has no dict version tags")
    changed = runner._make_integrity_check()
    assert changed() is None
    original = builtins.len
    builtins.len = lambda x: 0
    try:
        assert changed() == "Python's builtins"
    finally:
        builtins.len = original
    changed = runner._make_integrity_check()
    wire.planted_by_a_test = 1  # a new name counts too
    try:
        assert changed() == "the grader's codec (grader.wire)"
    finally:
        del wire.planted_by_a_test


def test_the_integrity_check_notices_a_patch_that_was_undone():
    """A name replaced while student code ran and put back before the reply is still noticed."""
    import builtins

    from grader import runner

    if runner._version_tag_reader() is None:
        pytest.skip("this Python has no dict version tags: only what is still patched is noticed")
    changed = runner._make_integrity_check()
    original = builtins.len
    builtins.len = lambda x: 0
    builtins.len = original
    assert changed() == "Python's builtins"


def test_the_version_tag_reader_refuses_any_other_field_of_a_dict():
    """Read at the wrong place (ma_used, which does not change when a value is replaced, or the
    keys pointer), the self-test refuses, and the worker keeps the identity check."""
    import ctypes

    from grader import runner

    if runner._version_tag_reader() is None:
        pytest.skip("this Python has no dict version tags")
    word = ctypes.sizeof(ctypes.c_ssize_t)
    assert runner._version_tag_reader(offset=2 * word) is None  # ma_used
    assert runner._version_tag_reader(offset=4 * word) is None  # ma_keys
