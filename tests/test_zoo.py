"""Every catalogued misconception has a mutant in the zoo; its diagnosis fires there and nowhere else."""

from __future__ import annotations

import pytest
from conftest import ROOT, ZOO

from grader import specs
from grader.model import Status

CATALOGUE: dict[str, set[str]] = {}
for _e in specs.ALL:
    for _d in _e.diagnoses:
        CATALOGUE.setdefault(_d.info.name, set()).add(_e.id)
MUTANTS = sorted(p for p in ZOO.glob("*.py") if p.stem.replace("_", "-") in CATALOGUE)


@pytest.fixture(scope="module")
def zoo_reports(grader):
    reports = {p.stem.replace("_", "-"): grader.grade_path(p) for p in MUTANTS}
    reports["solutions"] = grader.grade_path(ROOT / "solutions")
    reports["all-correct"] = grader.grade_path(ZOO / "all_correct.py")
    return reports


def test_every_misconception_has_a_mutant():
    missing = sorted(set(CATALOGUE) - {p.stem.replace("_", "-") for p in MUTANTS})
    assert not missing, f"misconceptions without a zoo file: {missing}"


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_diagnosis_fires_on_its_mutant(zoo_reports, name):
    attempted = [
        e
        for e in zoo_reports[name].exercises
        if e.id in CATALOGUE[name] and e.status is not Status.NOT_ATTEMPTED
    ]
    assert len(attempted) == 1, "a mutant defines exactly one exercise function"
    exercise = attempted[0]
    assert exercise.status is Status.FAILED, exercise.message
    assert name in [m.name for m in exercise.misconceptions]
    assert exercise.score < exercise.max_score
    flagged = [c for c in exercise.cases if c.misconception == name]
    assert flagged and all(c.status is not Status.PASSED for c in flagged)


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_diagnosis_fires_nowhere_else(zoo_reports, name):
    for other, report in zoo_reports.items():
        if other == name:
            continue
        fired = {m.name for e in report.exercises for m in e.misconceptions}
        assert name not in fired, f"{name} also fired on {other}"


def test_misconception_texts_are_short_and_complete():
    for e in specs.ALL:
        for d in e.diagnoses:
            m = d.info
            assert m.title and m.explanation and m.hint, m.name
            assert len(m.explanation) <= 240, m.name
            assert (d.variant is None) != (d.detect is None), m.name
