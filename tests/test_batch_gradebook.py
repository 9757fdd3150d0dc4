"""The SQLite gradebook: recording, skipping, statuses, overrides and grades.csv (no processes)."""

from __future__ import annotations

import csv
import json
import sqlite3

import pytest

from grader.batch import export
from grader.batch.gradebook import Gradebook, classify
from grader.errors import UsageError


def _exercise(ex_id, status, score, max_score=2.0, message="", misconception=None, cases=None):
    return {
        "id": ex_id,
        "title": ex_id,
        "status": status,
        "score": score,
        "max_score": max_score,
        "message": message,
        "passed_cases": 1 if status == "passed" else 0,
        "total_cases": 1,
        "misconception": misconception,
        "misconceptions": [{"name": misconception, "title": "t", "explanation": "e", "hint": "h"}]
        if misconception
        else [],
        "hint": "",
        "notes": [],
        "figures": [],
        "cases": cases
        or [
            {
                "id": "one",
                "label": "one case",
                "status": status,
                "message": message,
                "details": [],
                "misconception": misconception,
                "call": "",
                "hidden": False,
                "weight": 1.0,
                "expected": None,
                "got": None,
                "traceback": [],
            }
        ],
    }


def _report(*exercises, crash=None, errors=()):
    return {
        "grader_version": "0.1.0",
        "submission": "x.py",
        "seed": 1,
        "hidden": True,
        "score": sum(e["score"] for e in exercises),
        "max_score": sum(e["max_score"] for e in exercises),
        "exercises": list(exercises),
        "warnings": [],
        "errors": list(errors),
        "crash": crash,
        "isolation": [],
        "output": {"text": "", "total_bytes": 0, "truncated": False},
        "hints_used": {},
    }


PASSED = _report(_exercise("losses.softmax", "passed", 2.0), _exercise("losses.nll_loss", "passed", 2.0))


@pytest.mark.parametrize(
    ("report", "status", "flags"),
    [
        (PASSED, "passed", ["passed"]),
        (
            _report(_exercise("a.f", "failed", 1.0, misconception="m"), _exercise("a.g", "passed", 2.0)),
            "partial",
            ["partial"],
        ),
        (_report(_exercise("a.f", "not_attempted", 0.0)), "not_attempted", ["not_attempted"]),
        (
            _report(
                _exercise("a.f", "timeout", 0.0, message="one: raised MemoryError"),
                _exercise("a.g", "passed", 2),
            ),
            "memory",
            ["memory", "timeout", "partial"],
        ),
        (
            _report(_exercise("a.f", "error", 0.0, message="x: your code ended the worker: SIGSEGV")),
            "crashed",
            ["crashed", "partial"],
        ),
        (_report(_exercise("a.f", "forbidden", 0.0)), "forbidden", ["forbidden", "partial"]),
        (
            _report(_exercise("a.f", "error", 0.0), errors=["x.py, line 3: invalid syntax (SyntaxError)"]),
            "input_error",
            ["input_error", "partial"],
        ),
        (_report(crash="internal grader error: boom"), "grader_error", ["grader_error"]),
    ],
)
def test_submission_status(report, status, flags):
    assert classify(report) == (status, flags)


def _record(book, run, student, digest, report, config="cfg", **kw):
    return book.record(
        run,
        student=student,
        name=kw.get("name", ""),
        email="",
        content_hash=digest,
        layout="flat",
        path=f"/subs/{student}.py",
        submitted_at=kw.get("submitted_at"),
        late=kw.get("late"),
        report=report,
        report_json=json.dumps(report),
        config=config,
        seconds=0.1,
    )


@pytest.fixture
def book(tmp_path):
    with Gradebook(tmp_path / "gradebook.sqlite") as b:
        yield b


def _run(book):
    return book.start_run(
        source="/subs", grader_version="0.1.0", config="cfg", executor="local", jobs=2, unsafe=False
    )


def test_durable_settings(book):
    assert book.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert book.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_record_then_skip_only_the_same_version_and_config(book):
    run = _run(book)
    sid = _record(book, run, "ana", "h1", PASSED)
    assert book.lookup("ana", "h1", "0.1.0", "cfg").graded
    assert book.lookup("ana", "h1", "0.1.0", "cfg").submission == sid
    assert not book.lookup("ana", "h1", "0.2.0", "cfg").graded  # new grader version: grade again
    assert not book.lookup("ana", "h1", "0.1.0", "other").graded  # new course config: grade again
    assert book.lookup("ana", "h2", "0.1.0", "cfg") is None  # changed content
    assert book.lookup("bob", "h1", "0.1.0", "cfg") is None
    crashed = _report(crash="internal grader error: boom")
    _record(book, run, "bob", "h3", crashed)
    assert not book.lookup("bob", "h3", "0.1.0", "cfg").graded  # a grader error is retried


def test_regrading_replaces_the_result_and_keeps_the_history(book):
    run = _run(book)
    _record(book, run, "ana", "h1", PASSED)
    partial = _report(_exercise("losses.softmax", "failed", 1.0, misconception="softmax-no-max-subtraction"))
    sid = _record(book, run, "ana", "h1", partial, config="cfg2")
    rows = book.db.execute(
        "SELECT exercise, score FROM exercise_results WHERE submission = ?", (sid,)
    ).fetchall()
    assert [tuple(r) for r in rows] == [("losses.softmax", 1.0)]
    assert book.gradings_per_student() == {"ana": 2}
    names = [r[0] for r in book.db.execute("SELECT name FROM misconceptions WHERE submission = ?", (sid,))]
    assert names == ["softmax-no-max-subtraction"]
    # a new submission becomes the current one; the old one stays in the book
    new = _record(book, run, "ana", "h9", PASSED)
    assert book.db.execute("SELECT current_submission FROM students WHERE id = 'ana'").fetchone()[0] == new
    assert book.db.execute("SELECT COUNT(*) FROM submissions WHERE student = 'ana'").fetchone()[0] == 2


def test_overrides_are_kept_apart_and_totals_derived(book, tmp_path):
    run = _run(book)
    partial = _report(
        _exercise("losses.softmax", "failed", 0.5, misconception="m"),
        _exercise("losses.nll_loss", "passed", 2.0),
    )
    _record(book, run, "ana", "h1", partial, name="=HYPERLINK(1)")
    _record(book, run, "bob", "h2", PASSED, submitted_at="2026-12-02T08:00:00+00:00", late=True)
    auto = book.override("ana", "losses.softmax", 1.75, "regrade request: correct idea, off-by-one dim")
    assert auto["score"] == 0.5
    assert book.effective("ana") == {"losses.softmax": (1.75, 1.75), "losses.nll_loss": (2.0, None)}
    # the auto score is untouched
    assert (
        book.db.execute(
            "SELECT score FROM exercise_results WHERE exercise = 'losses.softmax' AND submission = 1"
        ).fetchone()[0]
        == 0.5
    )
    path = tmp_path / "grades.csv"
    assert export.write_grades_csv(book, path) == 2
    rows = list(csv.DictReader(path.open()))
    ana, bob = rows
    assert (ana["losses.softmax"], ana["losses.nll_loss"], ana["total"], ana["max_score"]) == (
        "1.75",
        "2",
        "3.75",
        "4",
    )
    assert ana["overridden"] == "losses.softmax" and ana["status"] == "partial"
    assert ana["name"] == "'=HYPERLINK(1)"  # never a formula in a spreadsheet
    assert (bob["total"], bob["late"], bob["status"]) == ("4", "yes", "passed")
    # clearing brings the auto score back
    book.override("ana", "losses.softmax", None, "undo")
    assert book.effective("ana")["losses.softmax"] == (0.5, None)


def test_override_errors_say_what_to_do(book):
    run = _run(book)
    _record(book, run, "ana", "h1", PASSED)
    with pytest.raises(UsageError, match="did you mean 'ana'"):
        book.override("anna", "losses.softmax", 1, "x")
    with pytest.raises(UsageError, match=r"did you mean 'losses\.softmax'"):
        book.override("ana", "losses.sofmax", 1, "x")
    with pytest.raises(UsageError, match="worth 2 points"):
        book.override("ana", "losses.softmax", 3, "x")
    with pytest.raises(UsageError, match="--why"):
        book.override("ana", "losses.softmax", 1, "  ")


def test_unusable_students_appear_with_their_reason(book, tmp_path):
    run = _run(book)
    _record(book, run, "ana", "h1", PASSED)
    book.note_problem(run, student="bob", path="/subs/bob", reason="empty folder")
    book.note_problem(run, student=None, path="/subs/notes.txt", reason="not a submission")
    path = tmp_path / "grades.csv"
    export.write_grades_csv(book, path)
    rows = {r["student"]: r for r in csv.DictReader(path.open())}
    assert rows["bob"]["status"] == "unusable" and rows["bob"]["total"] == "0"
    assert [tuple(p) for p in book.problems(run)] == [
        ("bob", "/subs/bob", "empty folder"),
        (None, "/subs/notes.txt", "not a submission"),
    ]


def test_a_crash_inside_a_transaction_leaves_nothing_half_written(book):
    run = _run(book)
    broken = dict(PASSED)
    broken["exercises"] = [*PASSED["exercises"], {"id": "broken"}]  # no status: the insert fails midway
    with pytest.raises(KeyError):
        _record(book, run, "ana", "h1", broken)
    assert book.db.execute("SELECT COUNT(*) FROM submissions").fetchone()[0] == 0
    assert book.db.execute("SELECT COUNT(*) FROM gradings").fetchone()[0] == 0


def test_schema_version_is_checked(tmp_path):
    path = tmp_path / "gradebook.sqlite"
    Gradebook(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(UsageError, match="schema 99"):
        Gradebook(path)
    with pytest.raises(UsageError, match="No gradebook"):
        Gradebook(tmp_path / "nothing.sqlite", create=False)
