"""Reading submissions: folders, single files, notebooks (definitions only), and what is refused."""

from __future__ import annotations

import os

import nbformat
import pytest
from conftest import ROOT, ZOO

from grader.errors import SubmissionError
from grader.specs import MODULES
from grader.submission import notebook_units, read_submission


def test_modules_folder_and_parent_folder(tmp_path):
    sub = read_submission(ROOT / "solutions", MODULES)
    assert set(sub.sources) == set(MODULES)
    assert sub.sources["losses"].units[0].name == "solutions/losses.py"
    (tmp_path / "exercises").mkdir()
    (tmp_path / "exercises" / "losses.py").write_text("x = 1\n")
    sub = read_submission(tmp_path, MODULES)
    assert set(sub.sources) == {"losses"}
    assert sub.source_for("presizing") is None


def test_digest_follows_content(tmp_path):
    f = tmp_path / "a.py"
    f.write_text("x = 1\n")
    d1 = read_submission(f, MODULES).digest()
    assert d1 == read_submission(f, MODULES).digest()
    f.write_text("x = 2\n")
    assert read_submission(f, MODULES).digest() != d1


def _nb(*cells: str) -> str:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    return nbformat.writes(nb)


def test_notebook_keeps_definitions_and_line_numbers():
    text = _nb(
        "import torch\nacts = torch.randn(3, 4)\nprint(acts)\n\ndef softmax(x, dim=-1):\n    return x\n",
        "%timeit softmax(acts)\n!pip install fastai\nPAT = re.compile('x')\nlearn = vision_learner(dls)\nimport re\n",
        "%%bash\nrm -rf ~\n",
    )
    units, notes = notebook_units(text, "nb.ipynb")
    first = units[0].text.splitlines()
    assert first[0] == "import torch" and first[1] == "" and first[2] == ""
    assert first[4].startswith("def softmax")
    second = units[1].text.splitlines()
    # PAT reads `re`, imported only further down: running it would fail, so it is skipped too
    assert (
        second[0] == ""
        and second[1] == ""
        and second[2] == ""
        and second[3] == ""
        and second[4] == "import re"
    )
    assert len(units) == 2
    joined = " ".join(notes)
    assert "%timeit" in joined and "!pip" in joined and "%%bash" in joined and "skipped 4 other" in joined


def test_notebook_syntax_error_names_the_cell(tmp_path):
    f = tmp_path / "nb.ipynb"
    f.write_text(_nb("def softmax(x):\n    return x\n", "def broken(:\n    pass\n"))
    sub = read_submission(f, MODULES)
    assert sub.syntax_errors == ["nb.ipynb cell 2, line 1: invalid syntax (SyntaxError)"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "not a valid notebook"),
        ('{"cells": 5, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}', "not a valid notebook"),
        ('{"nbformat": 99}', "not a valid notebook"),
    ],
)
def test_bad_notebooks(tmp_path, content, needle):
    f = tmp_path / "nb.ipynb"
    f.write_text(content)
    with pytest.raises(SubmissionError, match=needle):
        read_submission(f, MODULES)


def test_symlink_outside_the_submission_is_refused(tmp_path):
    secret = tmp_path / "secret.py"
    secret.write_text("x = 1\n")
    sub = tmp_path / "student"
    sub.mkdir()
    os.symlink(secret, sub / "answer.py")
    with pytest.raises(SubmissionError, match="outside the submission"):
        read_submission(sub, MODULES)


def test_huge_file_is_refused(tmp_path):
    f = tmp_path / "big.py"
    f.write_text("#" * (3 * 1024 * 1024))
    with pytest.raises(SubmissionError, match="too large"):
        read_submission(f, MODULES)


def test_zoo_notebook_reads():
    sub = read_submission(ZOO / "notebook_all.ipynb", MODULES)
    assert sub.single is not None and not sub.syntax_errors


def test_notebook_drops_grader_imports_and_constants_built_from_dropped_names():
    text = _nb(
        "from grader.nbgrader import check\nimport grader\nimport torch\nacts = torch.randn(3, 4)\n"
        "first = acts[0]\nSCALE = 2.0\nDOUBLE = SCALE * 2\n",
        "def softmax(x, dim=-1):\n    return x\n\ncheck('losses.softmax', softmax, points=2)\n",
    )
    units, notes = notebook_units(text, "nb.ipynb")
    first = units[0].text.splitlines()
    assert first[0] == "" and first[1] == ""  # the kit's own imports are never student code
    assert first[2] == "import torch"
    assert first[3] == "" and first[4] == ""  # acts = randn(...) is exploration; first = acts[0] needs it
    assert first[5] == "SCALE = 2.0" and first[6] == "DOUBLE = SCALE * 2"
    assert "check(" not in units[1].text
    assert any("skipped 3 other" in n for n in notes)
