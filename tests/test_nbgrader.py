"""grader.nbgrader: the test cells' check() (a plain float, never raises, stderr empty), where the
hidden seed comes from, and `grade nbgrader init` (the source notebook and its metadata).
The real nbgrader CLI runs in test_nbgrader_e2e.py."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, load_module, run_grade

from grader import nbgrader, notebook, specs

SOFTMAX = """
import warnings

import torch


def softmax(acts, dim=-1):
    warnings.warn("a harmless warning from the student's function")
    m = acts.detach().amax(dim=dim, keepdim=True)
    e = torch.exp(acts - m)
    return e / e.sum(dim=dim, keepdim=True)
"""


@pytest.fixture(autouse=True)
def no_course(monkeypatch):
    monkeypatch.delenv("IMGCLASS_COURSE_CONFIG", raising=False)
    monkeypatch.delenv("IMGCLASS_HIDDEN_SEED", raising=False)


# ----------------------------------------------------------------------------- check()


@pytest.mark.parametrize(
    ("score", "points", "expected"),
    [(1.5, 2, 1.5), (3.0, 2, 2.0), (-1.0, 2, 0.0), (float("nan"), 2, 0.0), ("2", 2, 2.0), (None, 2, 0.0)],
)
def test_clamp_gives_a_plain_float_in_range(score, points, expected):
    value = nbgrader.clamp(score, points)
    assert type(value) is float and value == expected


def test_clamp_turns_numpy_and_torch_scalars_into_floats():
    import numpy as np
    import torch

    assert type(nbgrader.clamp(np.float64(0.5), 2)) is float
    assert (
        type(nbgrader.clamp(torch.tensor(1.25), 2)) is float and nbgrader.clamp(torch.tensor(1.25), 2) == 1.25
    )


def test_a_correct_function_gets_its_points_as_a_float_and_stderr_stays_empty(tmp_path, capfd):
    mod = load_module(tmp_path, "nb_correct", SOFTMAX)
    value = nbgrader.check("losses.softmax", mod.softmax, points=2)
    out, err = capfd.readouterr()
    assert type(value) is float and value == 2.0
    assert err == ""
    assert out.startswith("✓ losses.softmax: passed 2/2")


def test_points_come_from_the_call_or_the_registry(tmp_path):
    mod = load_module(tmp_path, "nb_points", SOFTMAX)
    assert nbgrader.check("losses.softmax", mod.softmax, points=5) == 5.0
    assert nbgrader.check("losses.softmax", mod.softmax) == specs.BY_ID["losses.softmax"].points


def test_a_wrong_answer_gets_partial_credit_and_an_explanation(tmp_path, capfd):
    mod = load_module(
        tmp_path,
        "nb_wrong",
        "def softmax(acts, dim=-1):\n    return acts.exp() / acts.exp().sum(dim, keepdim=True)\n",
    )
    value = nbgrader.check("losses.softmax", mod.softmax, points=2)
    out, err = capfd.readouterr()
    assert type(value) is float and 0.0 < value < 2.0
    assert "misconception softmax-no-max-subtraction" in out and err == ""


@pytest.mark.parametrize(
    ("exercise", "fn", "message"),
    [
        ("losses.sofmax", "fn", "did you mean 'losses.softmax'"),
        ("losses.softmax", None, "needs a function"),
        ("losses.softmax", len, "defined with `def`"),
    ],
)
def test_problems_never_raise_and_score_zero(tmp_path, capfd, exercise, fn, message):
    mod = load_module(tmp_path, "nb_problem", SOFTMAX)
    value = nbgrader.check(exercise, mod.softmax if fn == "fn" else fn, points=2)
    out, err = capfd.readouterr()
    assert type(value) is float and value == 0.0
    assert message in out and "Score 0" in out and err == ""


def test_hidden_without_a_course_config_scores_zero_loudly(tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mod = load_module(tmp_path, "nb_hidden_none", SOFTMAX)
    value = nbgrader.check("losses.softmax", mod.softmax, points=2, hidden=True)
    out, err = capfd.readouterr()
    assert value == 0.0 and "no hidden seed" in out and err == ""


def test_hidden_reads_the_seed_from_the_course_config(tmp_path, capfd, monkeypatch):
    seed = 555_000_111_222
    config = tmp_path / "course.toml"
    config.write_text(f"[grading]\nhidden_seed = {seed}\n")
    monkeypatch.setenv("IMGCLASS_COURSE_CONFIG", str(config))
    mod = load_module(
        tmp_path,
        "nb_hidden",
        "def softmax(acts, dim=-1):\n    return acts.exp() / acts.exp().sum(dim, keepdim=True)\n",
    )
    value = nbgrader.check("losses.softmax", mod.softmax, points=2, hidden=True)
    out, _ = capfd.readouterr()
    assert 0.0 < value < 2.0
    first = out.splitlines()[0]
    assert first.startswith("losses.softmax with the hidden cases: failed") and "hidden cases passed" in first
    assert "hidden: large activations" in out and "(softmax-no-max-subtraction)" in out
    assert str(seed) not in out
    assert "manual_seed" not in out  # no case of the hidden kind is shown as a call


# ----------------------------------------------------------------------------- finding the course file


def _course(root: Path) -> Path:
    (root / "nbgrader_config.py").write_text("c = get_config()\n")
    (root / nbgrader.COURSE_FILE).write_text("[grading]\nhidden_seed = 1\n")
    return root / nbgrader.COURSE_FILE


def test_course_config_is_found_from_autograde_and_source_folders(tmp_path):
    config = _course(tmp_path)
    autograded = tmp_path / "autograded" / "s1" / "ps5"
    source = tmp_path / "source" / "ps5"
    for d in (autograded, source):
        d.mkdir(parents=True)
    assert nbgrader.course_config(autograded) == config.resolve()
    assert nbgrader.course_config(source) == config.resolve()
    assert nbgrader.course_config(tmp_path / "source") is None
    assert nbgrader.course_config(tmp_path) is None


def test_a_course_file_submitted_next_to_the_notebook_is_ignored(tmp_path):
    here = tmp_path / "autograded" / "s1" / "ps5"
    here.mkdir(parents=True)
    (here / nbgrader.COURSE_FILE).write_text("[grading]\nhidden_seed = 2\n")  # from the student
    (here / "nbgrader_config.py").write_text("c = get_config()\n")
    assert nbgrader.course_config(here) is None  # the course root has no course file


def test_the_environment_variable_wins(tmp_path, monkeypatch):
    _course(tmp_path)
    other = tmp_path / "elsewhere.toml"
    monkeypatch.setenv("IMGCLASS_COURSE_CONFIG", str(other))
    assert nbgrader.course_config(tmp_path / "autograded" / "s1" / "ps5") == other.resolve()


# ----------------------------------------------------------------------------- grade nbgrader init


def test_init_writes_the_course(tmp_path):
    course = tmp_path / "course"
    proc = run_grade("nbgrader", "init", str(course), "--assignment", "ps5")
    assert proc.returncode == 0, proc.stderr
    config = (course / "nbgrader_config.py").read_text()
    assert "c.Execute.timeout = " in config
    toml = (course / nbgrader.COURSE_FILE).read_text()
    seed = next(line.split("=")[1].strip() for line in toml.splitlines() if line.startswith("hidden_seed"))
    assert int(seed) > 0
    nb_path = course / "source" / "ps5" / "ps5.ipynb"
    text = nb_path.read_text()
    assert seed not in text
    nb = nbformat.read(nb_path, as_version=4)
    nbformat.validate(nb)
    validator = pytest.importorskip("nbgrader.nbgraderformat").MetadataValidator()
    validator.validate_nb(nb)  # nbgrader's own schema (v3)
    assert nbgrader.verify_points(nb_path) == []
    tests = {c.metadata.nbgrader.grade_id: c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}
    assert len(tests) == len(specs.ALL)
    for ex in specs.ALL:
        cell = tests[f"{ex.module}_{ex.func}_test"]
        assert cell.metadata.nbgrader.points == ex.points and cell.metadata.nbgrader.locked
        public, hidden = (
            f'check("{ex.id}", {ex.func}, points={ex.points:g})',
            f'check("{ex.id}", {ex.func}, points={ex.points:g}, hidden=True)',
        )
        assert cell.source == (
            f"from grader.nbgrader import check\n{public}\n### BEGIN HIDDEN TESTS\n{hidden}\n### END HIDDEN TESTS"
        )
        sol = next(
            c
            for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade_id") == f"{ex.module}_{ex.func}_sol"
        )
        assert sol.metadata.nbgrader.solution and not sol.metadata.nbgrader.grade
        assert "    ### BEGIN SOLUTION\n" in sol.source and sol.source.endswith("    ### END SOLUTION")
        assert f"def {ex.func}(" in sol.source


def test_init_reads_points_from_the_course_file_and_keeps_it(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    (course / nbgrader.COURSE_FILE).write_text(
        '[grading]\nhidden_seed = 77\nexercises = ["losses"]\n\n[points]\n"losses.cross_entropy" = 4.5\n'
    )
    lines = nbgrader.init_course(course, "ps5")
    assert any("kept" in line and nbgrader.COURSE_FILE in line for line in lines)
    nb = nbformat.read(course / "source" / "ps5" / "ps5.ipynb", as_version=4)
    points = {
        c.metadata.nbgrader.grade_id: c.metadata.nbgrader.points
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade")
    }
    assert set(points) == {f"losses_{e.func}_test" for e in specs.ALL if e.module == "losses"}
    assert points["losses_cross_entropy_test"] == 4.5
    assert "points=4.5" in next(c.source for c in nb.cells if c.get("id") == "losses_cross_entropy-test")
    with pytest.raises(Exception, match="--force"):
        nbgrader.init_course(course, "ps5")


def test_verify_catches_points_that_disagree(tmp_path):
    nb = notebook.nbgrader_notebook(specs.select(["losses.softmax"]), {}, solutions=ROOT / "solutions")
    test_cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade"))
    test_cell.metadata.nbgrader.points = 3
    path = tmp_path / "nb.ipynb"
    notebook.write_notebook(nb, path)
    problems = nbgrader.verify_points(path)
    assert len(problems) == 2 and all("losses_softmax_test" in p and "points=2" in p for p in problems)
    proc = run_grade("nbgrader", "verify", str(path))
    assert proc.returncode == 1 and "losses_softmax_test" in proc.stdout


def test_the_release_of_the_source_notebook_has_no_hidden_call(tmp_path):
    """What generate_assignment does to a test cell: the hidden block goes, the public call stays last."""
    cell = notebook.autograder_cell(specs.BY_ID["losses.softmax"], 2)
    begin, end = cell.index("### BEGIN HIDDEN TESTS"), cell.index("### END HIDDEN TESTS")
    released = (cell[:begin] + cell[end + len("### END HIDDEN TESTS") :]).strip()
    assert released.splitlines()[-1] == 'check("losses.softmax", softmax, points=2)'
    assert json.dumps(cell).count("hidden=True") == 1
