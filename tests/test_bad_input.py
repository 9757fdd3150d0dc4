"""Bad input gets one clear line and exit code 2, never a traceback from the grader."""

from __future__ import annotations

import pytest
from conftest import ZOO, run_grade


def _one_line_error(result, *needles: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("grade: error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_missing_path():
    _one_line_error(run_grade("no/such/folder"), "No such file or folder")


def test_folder_without_submission(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    _one_line_error(run_grade(str(tmp_path)), "No exercises/ folder, .py or .ipynb found")


def test_two_notebooks(tmp_path):
    for name in ("a.ipynb", "b.ipynb"):
        (tmp_path / name).write_text((ZOO / "notebook_all.ipynb").read_text())
    _one_line_error(run_grade(str(tmp_path)), "Two or more candidate notebooks")


def test_syntax_error_shows_file_and_line():
    result = run_grade(str(ZOO / "syntax_error.py"))
    _one_line_error(result, "syntax_error.py, line 8", "SyntaxError")


def test_syntax_error_in_one_module_still_grades_the_others(tmp_path):
    folder = tmp_path / "exercises"
    folder.mkdir()
    (folder / "losses.py").write_text("def softmax(acts, dim=-1:\n    pass\n")
    (folder / "regex_labels.py").write_text((ZOO.parent.parent / "solutions" / "regex_labels.py").read_text())
    result = run_grade(str(tmp_path), "--json")
    assert result.returncode == 2
    import json

    data = json.loads(result.stdout)
    status = {e["id"]: e["status"] for e in data["exercises"]}
    assert status["regex_labels.breed_from_filename"] == "passed"
    assert status["losses.softmax"] == "error"
    assert status["presizing.item_resize"] == "not_attempted"


def test_import_error():
    _one_line_error(
        run_grade(str(ZOO / "import_error.py")), "ModuleNotFoundError", "imgclass_kit_no_such_module"
    )


def test_notebook_that_is_not_json():
    _one_line_error(
        run_grade(str(ZOO / "notebook_broken.ipynb")), "notebook_broken.ipynb is not a valid notebook"
    )


@pytest.mark.parametrize("name", ["losses.sofmax", "softmx"])
def test_unknown_exercise_suggests_the_right_name(name):
    result = run_grade("solutions", "--only", name)
    _one_line_error(result, "did you mean")


def test_not_a_python_file(tmp_path):
    f = tmp_path / "answers.txt"
    f.write_text("x")
    _one_line_error(run_grade(str(f)), "not a .py module or an .ipynb notebook")


def test_binary_and_non_utf8_files(tmp_path):
    (tmp_path / "bin.py").write_bytes(b"\x00\x01\x02")
    _one_line_error(run_grade(str(tmp_path / "bin.py")), "not a text file")
    (tmp_path / "latin.py").write_bytes("x = 'caf\xe9'\n".encode("latin-1"))
    _one_line_error(run_grade(str(tmp_path / "latin.py")), "not UTF-8")
