"""The student notebook exercises/chapter5.ipynb: generated from the stubs, up to date, gradable by
`grade`, and executable in a real kernel (nbclient) where every check() shows its result."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, run_grade

from grader import notebook, specs

COMMITTED = ROOT / "exercises" / notebook.NOTEBOOK_NAME


def _check_cells(nb) -> dict[str, dict]:
    """exercise id -> the check cell (ids are <module>-<func>-check)."""
    out = {}
    for ex in specs.ALL:
        cell_id = f"{ex.module}-{ex.func}-check"
        matches = [c for c in nb.cells if c.get("id") == cell_id]
        assert len(matches) == 1, f"no check cell for {ex.id}"
        out[ex.id] = matches[0]
    return out


def test_the_committed_notebook_is_up_to_date():
    messages: list[str] = []
    assert notebook.main(["build", "--check"], out=messages.append) == 0, (
        "exercises/chapter5.ipynb is stale: run `python -m grader.notebook build`"
    )
    assert COMMITTED.read_text() == nbformat.writes(notebook.student_notebook())


def test_every_exercise_has_its_stub_and_check_cell():
    nb = nbformat.read(COMMITTED, as_version=4)
    nbformat.validate(nb)
    checks = _check_cells(nb)
    for ex in specs.ALL:
        stub = next(c for c in nb.cells if c.get("id") == f"{ex.module}-{ex.func}")
        assert f"def {ex.func}(" in stub.source and "raise NotImplementedError" in stub.source
        assert checks[ex.id].source == f"check({ex.func})"
    assert nb.cells[1].source == "from grader import check"
    lessons = [c for c in nb.cells if c.get("id", "").endswith("-lesson")]
    assert [c.id for c in lessons] == [f"{m}-lesson" for m in specs.MODULES]
    assert all(c.source.startswith("## ") and len(c.source) > 200 for c in lessons)


def test_solved_cells_use_the_solutions_with_their_helpers():
    nb = notebook.student_notebook(solutions=ROOT / "solutions")
    sources = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "raise NotImplementedError" not in sources
    src = next(c.source for c in nb.cells if c.get("id") == "regex_labels-breed_from_filename")
    # the solution module's own compiled pattern is inlined into the body that uses it
    assert src.index('"""') < src.index("_PET_NAME = re.compile") < src.index("_PET_NAME.fullmatch")


def test_grade_says_the_untouched_notebook_is_not_attempted():
    proc = run_grade(str(COMMITTED), "--json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert {e["id"] for e in report["exercises"]} == set(specs.BY_ID)
    assert {e["status"] for e in report["exercises"]} == {"not_attempted"}


def test_grade_gives_the_solved_notebook_full_marks(tmp_path):
    path = tmp_path / "solved.ipynb"
    notebook.write_notebook(notebook.student_notebook(solutions=ROOT / "solutions"), path)
    proc = run_grade(str(path), "--json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert report["score"] == report["max_score"] == sum(e.points for e in specs.ALL)


# ----------------------------------------------------------------------------- a real kernel


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """A python3 kernelspec for THIS interpreter (the venv's), first on JUPYTER_PATH."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"})
    )
    mp = pytest.MonkeyPatch()
    mp.setenv("JUPYTER_PATH", str(root))
    mp.delenv("IMGCLASS_COURSE_CONFIG", raising=False)
    yield "python3"
    mp.undo()


def _execute(nb, kernel_name: str, cwd: Path):
    nbclient = pytest.importorskip("nbclient")
    client = nbclient.NotebookClient(
        nb,
        timeout=600,
        kernel_name=kernel_name,
        allow_errors=False,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()
    return nb


def _shown(cell) -> tuple[str, str]:
    """(text/plain, text/html) of the one display a check cell produced."""
    displays = [o for o in cell.outputs if o.output_type == "display_data"]
    assert len(displays) == 1, cell.outputs
    assert not [o for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"]
    return displays[0].data["text/plain"], displays[0].data["text/html"]


def test_executing_the_stubs_shows_every_check_not_attempted(kernel, tmp_path):
    nb = _execute(nbformat.read(COMMITTED, as_version=4), kernel, tmp_path)
    for exercise_id, cell in _check_cells(nb).items():
        text, html = _shown(cell)
        points = specs.BY_ID[exercise_id].points
        assert text.startswith(f"… {exercise_id}: not attempted 0/{points:g}"), text
        assert "not attempted" in html and 'class="imgclass-check"' in html


def test_executing_the_solutions_shows_every_check_passing(kernel, tmp_path):
    nb = notebook.student_notebook(solutions=ROOT / "solutions")
    # exploration between the cells must not disturb check(): it only re-runs definitions
    nb.cells.insert(3, nbformat.v4.new_code_cell("import torch\nacts = torch.randn(6, 2)\nprint(acts.shape)"))
    nb = _execute(nb, kernel, tmp_path)
    for exercise_id, cell in _check_cells(nb).items():
        text, html = _shown(cell)
        points = specs.BY_ID[exercise_id].points
        assert text.startswith(f"✓ {exercise_id}: passed {points:g}/{points:g}"), text
        assert "passed" in html


def test_a_mistake_in_a_kernel_is_explained_and_later_fixes_count(kernel, tmp_path):
    """History: the check sees the latest definition; a failed import and a cell that raised are
    left out with a note instead of breaking every later check."""
    cells = [
        "from grader import check\nimport torch",
        "import fastai_missing_module_xyz",
        "def softmax(acts, dim=-1):\n    return acts.exp() / acts.exp().sum(dim, keepdim=True)",
        "check(softmax)",
        "def softmax(acts, dim=-1):\n"
        "    e = torch.exp(acts - acts.detach().amax(dim=dim, keepdim=True))\n"
        "    return e / e.sum(dim=dim, keepdim=True)",
        "check(softmax)",
        "check('losses.sofmax', softmax)",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = dict(notebook.KERNELSPEC)
    nb.cells.insert(2, nbformat.v4.new_code_cell("x = 1/0"))
    client_nb = nb
    nbclient = pytest.importorskip("nbclient")
    nbclient.NotebookClient(client_nb, timeout=600, kernel_name=kernel, allow_errors=True).execute()
    first, _ = _shown(client_nb.cells[4])
    assert first.startswith("✗ losses.softmax: failed")
    assert "misconception softmax-no-max-subtraction" in first
    assert "fastai_missing_module_xyz" in first  # the note on what was left out
    assert "x = 1/0" in first
    second, _ = _shown(client_nb.cells[6])
    assert second.startswith("✓ losses.softmax: passed 2/2")
    problem, problem_html = _shown(client_nb.cells[7])
    assert "did you mean 'losses.softmax'" in problem and "imgclass-check" in problem_html
