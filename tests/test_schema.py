"""The JSON report follows its documented, versioned schema."""

from __future__ import annotations

import json

import jsonschema
import pytest
from conftest import ROOT, ZOO

SCHEMA = json.loads((ROOT / "schemas" / "report.schema.json").read_text())


@pytest.mark.parametrize(
    "target", ["solutions", "exercises", "zoo:softmax_no_max_subtraction.py", "zoo:infinite_loop.py"]
)
def test_reports_validate(grader, target):
    from grader.render import render

    path = ZOO / target[4:] if target.startswith("zoo:") else ROOT / target
    data = json.loads(render(grader.grade_path(path).to_dict(), "json"))
    jsonschema.validate(data, SCHEMA)
    assert data["schema_version"] == 1
    for e in data["exercises"]:
        for c in e["cases"]:
            assert set(c) >= {"id", "status", "message", "misconception"}


def test_report_roundtrips_through_its_dict(grader):
    from grader.model import Report

    report = grader.grade_path(ZOO / "ce_probs_not_log_probs.py")
    assert Report.from_dict(report.to_dict()).to_dict() == report.to_dict()
