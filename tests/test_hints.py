"""Progressive hints: `grade --hint` shows the next one, remembers it in the kit folder, and
reports say how many were opened (an instructor may charge for them in the course config)."""

from __future__ import annotations

import json
import shutil

from conftest import ROOT, run_grade

from grader import specs


def _kit(tmp_path, folder="exercises"):
    kit = tmp_path / "kit"
    shutil.copytree(ROOT / folder, kit / "exercises")
    return kit


def test_hints_unlock_one_at_a_time_and_are_remembered(tmp_path):
    kit = _kit(tmp_path)
    hints = specs.BY_ID["losses.softmax"].hints
    shown = [run_grade("--hint", "losses.softmax", cwd=kit) for _ in range(len(hints) + 1)]
    for i, result in enumerate(shown):
        n = min(i + 1, len(hints))
        assert result.returncode == 0, result.stderr
        assert f"hint {n} of {len(hints)}" in result.stdout
        assert hints[n - 1] in result.stdout
    assert json.loads((kit / ".imgclass-hints.json").read_text()) == {"losses.softmax": len(hints)}
    report = run_grade("--json", cwd=kit)
    assert json.loads(report.stdout)["hints_used"] == {"losses.softmax": len(hints)}
    text = run_grade(cwd=kit)
    assert f"Hints opened: losses.softmax {len(hints)}." in text.stdout


def test_hint_names_must_name_one_exercise(tmp_path):
    kit = _kit(tmp_path)
    result = run_grade("--hint", "losses", cwd=kit)
    assert result.returncode == 2 and "names 5 exercises" in result.stderr
    result = run_grade("--hint", "sofmax", cwd=kit)
    assert result.returncode == 2 and "did you mean" in result.stderr


def test_course_may_charge_for_hints(tmp_path):
    kit = _kit(tmp_path, "solutions")
    run_grade("--hint", "losses.softmax", cwd=kit)
    run_grade("--hint", "losses.softmax", cwd=kit)
    config = tmp_path / "course.toml"
    config.write_text("[grading]\nhint_penalty = 0.25\n")
    free = json.loads(run_grade("--json", cwd=kit).stdout)
    charged = json.loads(run_grade("--json", "--config", str(config), cwd=kit).stdout)
    by_id = {e["id"]: e["score"] for e in charged["exercises"]}
    assert free["score"] == free["max_score"]
    assert by_id["losses.softmax"] == specs.BY_ID["losses.softmax"].points - 0.5
    assert charged["score"] == free["score"] - 0.5
