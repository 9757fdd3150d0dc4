"""Discovery of submissions in the layouts instructors have (no grading, no processes)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from conftest import ROOT, ZOO

from grader.batch.discover import (
    FLAT,
    FOLDER,
    GRADESCOPE,
    NBGRADER,
    Candidate,
    Unusable,
    discover,
    parse_time,
    student_id,
)
from grader.errors import UsageError

NOTEBOOK = (ZOO / "notebook_all.ipynb").read_text()
CORRECT = (ZOO / "all_correct.py").read_text()


def _split(found):
    candidates = {f.student: f for f in found if isinstance(f, Candidate)}
    unusable = [f for f in found if isinstance(f, Unusable)]
    return candidates, unusable


def test_flat_and_folder_per_student(tmp_path):
    (tmp_path / "ana.py").write_text(CORRECT)
    (tmp_path / "bob.ipynb").write_text(NOTEBOOK)
    (tmp_path / "carl" / "exercises").mkdir(parents=True)
    (tmp_path / "carl" / "exercises" / "losses.py").write_text("")
    (tmp_path / "dora").mkdir()
    (tmp_path / "dora" / "answers.py").write_text(CORRECT)
    (tmp_path / "emil").mkdir()  # empty
    (tmp_path / "notes.txt").write_text("not a submission")
    (tmp_path / ".DS_Store").write_text("hidden files are ignored")
    candidates, unusable = _split(list(discover(tmp_path)))
    assert sorted(candidates) == ["ana", "bob", "carl", "dora"]
    assert candidates["ana"].layout == FLAT and candidates["ana"].path.name == "ana.py"
    assert candidates["carl"].layout == FOLDER and candidates["carl"].path.name == "carl"
    reasons = {u.path.name: u.reason for u in unusable}
    assert reasons["emil"] == "empty folder"
    assert "not a submission" in reasons["notes.txt"]
    assert ".DS_Store" not in reasons


def test_the_same_student_twice_is_ambiguous(tmp_path):
    (tmp_path / "ana.py").write_text(CORRECT)
    (tmp_path / "ana.ipynb").write_text(NOTEBOOK)
    (tmp_path / "bob.py").write_text(CORRECT)
    candidates, unusable = _split(list(discover(tmp_path)))
    assert list(candidates) == ["bob"]
    assert {u.path.name for u in unusable} == {"ana.py", "ana.ipynb"}
    assert all("two or more submissions" in u.reason for u in unusable)


def test_output_folder_inside_the_submissions_is_skipped(tmp_path):
    (tmp_path / "ana.py").write_text(CORRECT)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "grades.csv").write_text("x")
    candidates, unusable = _split(list(discover(tmp_path, exclude=tmp_path / "results")))
    assert list(candidates) == ["ana"] and not unusable


def _nbgrader_course(root):
    sub = root / "submitted"
    (sub / "ana" / "ps1").mkdir(parents=True)
    (sub / "ana" / "ps1" / "ps1.ipynb").write_text(NOTEBOOK)
    (sub / "ana" / "ps1" / "timestamp.txt").write_text("2026-12-01 22:15:03.123456 UTC")
    (sub / "ana" / "ps1" / ".ipynb_checkpoints").mkdir()
    (sub / "ana" / "ps1" / ".ipynb_checkpoints" / "ps1-checkpoint.ipynb").write_text(NOTEBOOK)
    (sub / "bob" / "ps1").mkdir(parents=True)
    (sub / "bob" / "ps1" / "ps1.ipynb").write_text(NOTEBOOK)
    (sub / "bob" / "ps1" / "copy.ipynb").write_text(NOTEBOOK)
    (sub / "carl" / "ps0").mkdir(parents=True)
    (sub / "carl" / "ps0" / "ps0.ipynb").write_text(NOTEBOOK)
    (sub / "dora" / "ps1").mkdir(parents=True)
    return sub


def test_nbgrader_layout(tmp_path):
    _nbgrader_course(tmp_path)
    with pytest.raises(UsageError, match=r"several nbgrader assignments.*--assignment"):
        list(discover(tmp_path))
    candidates, unusable = _split(list(discover(tmp_path, assignment="ps1")))
    assert list(candidates) == ["ana"]
    ana = candidates["ana"]
    assert ana.layout == NBGRADER and ana.path.name == "ps1.ipynb"  # the checkpoint copy is not a candidate
    assert ana.submitted_at == datetime(2026, 12, 1, 22, 15, 3, 123456, tzinfo=UTC)
    reasons = {u.student: u.reason for u in unusable}
    assert "two or more candidate notebooks" in reasons["bob"]
    assert "no ps1/ folder" in reasons["carl"]
    assert reasons["dora"] == "empty folder"
    # the submitted/ folder itself works too
    again, _ = _split(list(discover(tmp_path / "submitted", assignment="ps1")))
    assert list(again) == ["ana"]


GRADESCOPE_METADATA = """\
submission_101:
  :submitters:
  - :name: Ana Lima
    :sid: '1001'
    :email: ana@example.edu
  :created_at: 2026-12-01 23:59:58.123456789 -08:00
  :score: 0.0
submission_102:
  :submitters:
  - :name: Bob Ray
    :email: bob@example.edu
  :created_at: 2026-11-30 10:00:00.000000000 +00:00
submission_103:
  :submitters:
  - :name: Carl Nix
    :sid: '1003'
"""


@pytest.mark.parametrize("without_yaml", [False, True])
def test_gradescope_export(tmp_path, monkeypatch, without_yaml):
    if without_yaml:
        import builtins

        real_import = builtins.__import__

        def no_yaml(name, *args, **kwargs):
            if name == "yaml":
                raise ImportError("no yaml here")
            return real_import(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", no_yaml)
    (tmp_path / "submission_metadata.yml").write_text(GRADESCOPE_METADATA)
    (tmp_path / "submission_101").mkdir()
    (tmp_path / "submission_101" / "answers.py").write_text(CORRECT)
    (tmp_path / "submission_102").mkdir()
    (tmp_path / "submission_102" / "nb.ipynb").write_text(NOTEBOOK)
    (tmp_path / "submission_999").mkdir()
    (tmp_path / "submission_999" / "x.py").write_text(CORRECT)
    candidates, unusable = _split(list(discover(tmp_path)))
    assert sorted(candidates) == ["1001", "bob@example.edu"]
    ana = candidates["1001"]
    assert (ana.layout, ana.name, ana.email) == (GRADESCOPE, "Ana Lima", "ana@example.edu")
    assert ana.submitted_at == datetime(2026, 12, 2, 7, 59, 58, 123456, tzinfo=UTC)
    reasons = {u.path.name: u.reason for u in unusable}
    assert "folder is missing" in reasons["submission_103"]
    assert "not listed" in reasons["submission_999"]


def test_student_ids_are_safe_file_names():
    assert student_id("Ana María") == "Ana_Mar_a"
    assert student_id("../../etc") == "etc"
    assert student_id("..") == "student"
    assert student_id("bob@example.edu") == "bob@example.edu"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01 22:15:03.123456 UTC", datetime(2026, 12, 1, 22, 15, 3, 123456, tzinfo=UTC)),
        ("2026-12-01 22:15:03 +0100", datetime(2026, 12, 1, 21, 15, 3, tzinfo=UTC)),
        ("2026-12-01T22:15:03Z", datetime(2026, 12, 1, 22, 15, 3, tzinfo=UTC)),
        ("2026-12-01 14:15:03 America/Los_Angeles", datetime(2026, 12, 1, 22, 15, 3, tzinfo=UTC)),
        ("yesterday", None),
        ("", None),
    ],
)
def test_hand_in_times(text, expected):
    assert parse_time(text) == expected


def test_missing_source_folder():
    with pytest.raises(UsageError, match="No such folder"):
        list(discover(ROOT / "no" / "such" / "folder"))
