"""The meta-test: the reference solutions score 100%, the untouched stubs are all not attempted."""

from __future__ import annotations

import json

from conftest import ROOT, run_grade

from grader import specs
from grader.model import Status


def test_solutions_score_full_marks(grader):
    report = grader.grade_path(ROOT / "solutions")
    assert report.errors == ()
    assert report.crash is None
    for e in report.exercises:
        assert e.status is Status.PASSED, (e.id, e.message)
        assert e.score == e.max_score
        assert e.misconceptions == ()
    assert report.score == report.max_score == sum(e.points for e in specs.ALL)


def test_stubs_are_not_attempted(grader):
    report = grader.grade_path(ROOT / "exercises")
    assert {e.status for e in report.exercises} == {Status.NOT_ATTEMPTED}
    assert report.score == 0
    for e in report.exercises:
        assert e.message.startswith("not implemented yet")


def test_cli_exit_codes_and_json(tmp_path):
    ok = run_grade("solutions", "--json")
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert data["score"] == data["max_score"] > 0
    stubs = run_grade("exercises")
    assert stubs.returncode == 1
    assert "not attempted" in stubs.stdout
    assert "Traceback" not in stubs.stdout + stubs.stderr


def test_grade_without_path_grades_exercises_folder():
    result = run_grade()
    assert result.returncode == 1
    assert "exercises" in result.stdout
    assert "14 not attempted yet" in result.stdout


def test_only_selects_exercises():
    result = run_grade("solutions", "--only", "losses.softmax", "--only", "regex_labels", "--json")
    data = json.loads(result.stdout)
    assert [e["id"] for e in data["exercises"]] == [
        "regex_labels.breed_from_filename",
        "regex_labels.is_cat",
        "losses.softmax",
    ]
