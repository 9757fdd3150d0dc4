"""End to end with the real nbgrader CLI (the README's "For instructors: nbgrader" commands):
`grade nbgrader init` -> `nbgrader generate_assignment` -> three students' submitted notebooks ->
`nbgrader autograde` -> `nbgrader generate_feedback` -> `nbgrader export`.

Slow (a couple of minutes on two cores): every command starts nbgrader, every submission a kernel.
"""

from __future__ import annotations

import csv
import html
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, ZOO

from grader import notebook, specs
from grader.settings import Settings
from grader.testing import run_exercise

pytest.importorskip("nbgrader")

BIN = Path(sys.executable).parent
SEED = 918_273_645_501  # the instructor's hidden seed: must appear in no file nbgrader writes
TIMEOUT = 10  # the kit's per-exercise timeout for this course (as `init` writes it)
STUB = "# YOUR CODE HERE\n    raise NotImplementedError()"
STUDENTS = ("s1_correct", "s2_partly_wrong", "s3_broken")


def _run(course: Path, *args: str) -> subprocess.CompletedProcess[str]:
    kernels = course.parent / "jupyter"
    env = {k: v for k, v in os.environ.items() if k not in ("IMGCLASS_COURSE_CONFIG", "IMGCLASS_HIDDEN_SEED")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",  # nbgrader runs `alembic` from the venv
        JUPYTER_PATH=str(kernels),  # the kernel is this venv's python, whatever else is installed
        NO_COLOR="1",
    )
    proc = subprocess.run(list(args), cwd=course, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{args[:3]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def _kernelspec(root: Path) -> None:
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"})
    )


def _body(path: Path, func: str) -> str:
    """A function's body from a module (solutions or the zoo), with its own helpers inlined."""
    module = notebook.ModuleSource.read(path)
    exercise = next(e for e in specs.ALL if e.func == func)
    stub = notebook.ModuleSource.read(ROOT / "exercises" / f"{exercise.module}.py")
    return notebook.solution_body(module, func, stub)


def _solved() -> dict[str, str]:
    return {f"{e.module}_{e.func}": _body(ROOT / "solutions" / f"{e.module}.py", e.func) for e in specs.ALL}


def _submit(course: Path, release, student: str, bodies: dict[str, str], after: dict[str, str]) -> None:
    """A student's notebook: the release with these bodies filled in (the others left as stubs),
    and extra cells of their own after some solution cells."""
    nb = nbformat.from_dict(json.loads(json.dumps(release)))
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        gid = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if gid.endswith("_sol"):
            key = gid.removesuffix("_sol")
            if key in bodies:
                assert STUB in cell.source
                cell.source = cell.source.replace(STUB, textwrap.indent(bodies[key], "    ").lstrip())
            if key in after:
                cells.append(nbformat.v4.new_code_cell(after[key]))
    nb.cells = cells
    folder = course / "submitted" / student / "ps5"
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / "ps5.ipynb")


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("nbgrader")
    _kernelspec(base / "jupyter")
    course = base / "course"
    course.mkdir()
    # The instructor's private course file (init keeps an existing one): seed and timeout.
    (course / "imgclass-course.toml").write_text(f"[grading]\nhidden_seed = {SEED}\ntimeout = {TIMEOUT}\n")
    _run(course, str(BIN / "grade"), "nbgrader", "init", str(course), "--assignment", "ps5")
    config = course / "nbgrader_config.py"
    text = config.read_text()
    assert "c.Execute.timeout = 60" in text
    # Every cell keeps the generated limit (60 s), except the one where a student's exploration loops
    # forever at the top level: nbgrader interrupts that one after 8 s instead of 60, to save time.
    loop_limit = 'c.Execute.timeout_func = lambda cell: 8 if "forgot to stop" in cell.source else 60\n'
    config.write_text(text + loop_limit)
    _run(course, str(BIN / "nbgrader"), "generate_assignment", "ps5")
    release = nbformat.read(course / "release" / "ps5" / "ps5.ipynb", as_version=4)

    solved = _solved()
    _submit(course, release, "s1_correct", solved, {})
    partly = dict(solved)
    partly["losses_softmax"] = _body(ZOO / "softmax_no_max_subtraction.py", "softmax")
    partly["losses_nll_loss"] = _body(ZOO / "nll_missing_minus.py", "nll_loss")
    del partly["regex_labels_is_cat"]  # left as the stub
    # correct, but warns and prints: nbgrader would give 0 for a warning on stderr
    partly["losses_binary_softmax"] = (
        "import warnings\nwarnings.warn('is this right?')\nprint('hello')\n"
        + (solved["losses_binary_softmax"])
    )
    _submit(course, release, "s2_partly_wrong", partly, {})
    broken = dict(solved)
    broken["losses_softmax"] = "while True:\n    pass"
    broken["losses_log_softmax"] = (
        "m = acts.detach().amax(dim=dim, keepdim=True)\n"
        "return acts - m - torch.log(torch.exp(acts - m).sum(dim=dim, keepdim=True)) * undefined_scale"
    )
    loops = {
        "losses_binary_softmax": "n = 0\nwhile True:  # exploring, forgot to stop\n    n += 1",
        "losses_nll_loss": "raise RuntimeError('I give up on this cell')",
    }
    _submit(course, release, "s3_broken", broken, loops)

    _run(course, str(BIN / "nbgrader"), "autograde", "ps5")
    _run(course, str(BIN / "nbgrader"), "generate_feedback", "ps5")
    _run(course, str(BIN / "nbgrader"), "export", "--to", "grades.csv")
    return course


def _cell_scores(course: Path) -> dict[str, dict[str, float]]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {
            s: {g.name: g.score for g in gb.find_submission_notebook("ps5", "ps5", s).grades}
            for s in STUDENTS
        }


def _expected(student: str) -> dict[str, float]:
    """Per test cell: full points, except the mistakes each student made; partial credit is what
    the kit's own judge gives the same function on the same public + hidden cases."""
    scores = {f"{e.module}_{e.func}_test": float(e.points) for e in specs.ALL}
    hidden = Settings(hidden_seed=SEED, timeout=TIMEOUT)
    if student == "s2_partly_wrong":
        for exercise_id, zoo in (
            ("losses.softmax", "softmax_no_max_subtraction"),
            ("losses.nll_loss", "nll_missing_minus"),
        ):
            ns: dict[str, object] = {}
            exec(compile((ZOO / f"{zoo}.py").read_text(), f"{zoo}.py", "exec"), ns)
            module, func = exercise_id.split(".")
            scores[f"{module}_{func}_test"] = run_exercise(exercise_id, ns[func], hidden).score  # type: ignore[arg-type]
        scores["regex_labels_is_cat_test"] = 0.0
        scores["losses_cross_entropy_test"] = 0.0  # their cross_entropy calls their nll_loss
    if student == "s3_broken":
        for cell in ("losses_softmax_test", "losses_log_softmax_test", "losses_cross_entropy_test"):
            scores[cell] = 0.0
    return scores


def _outputs(course: Path, student: str, grade_ids: list[str]) -> str:
    """What the autograded test cells printed (to explain a failed assertion)."""
    nb = nbformat.read(course / "autograded" / student / "ps5" / "ps5.ipynb", as_version=4)
    lines = []
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") in grade_ids:
            for o in cell.outputs:
                text = (
                    o.get("text")
                    or o.get("data", {}).get("text/plain")
                    or f"{o.get('ename')}: {o.get('evalue')}"
                )
                lines.append(f"[{cell.metadata.nbgrader.grade_id}] {o.output_type}: {text}")
    return "\n".join(lines)


def test_scores_per_cell_and_in_total(course):
    scores = _cell_scores(course)
    for student in STUDENTS:
        expected = _expected(student)
        wrong = [k for k in expected if abs(scores[student].get(k, -1) - expected[k]) > 1e-3]
        assert not wrong, f"{student}: {wrong}\n{_outputs(course, student, wrong)}"
    assert 0.0 < scores["s2_partly_wrong"]["losses_softmax_test"] < 2.0  # partial credit
    assert scores["s2_partly_wrong"]["losses_nll_loss_test"] == 0.0
    with open(course / "grades.csv", newline="") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    total = sum(e.points for e in specs.ALL)
    for student in STUDENTS:
        assert float(rows[student]["max_score"]) == total
        assert float(rows[student]["raw_score"]) == pytest.approx(sum(scores[student].values()), abs=1e-3)
    assert float(rows["s1_correct"]["raw_score"]) == total


def test_every_test_cell_ends_in_a_plain_float_and_never_writes_stderr(course):
    for student in ("s1_correct", "s2_partly_wrong"):
        nb = nbformat.read(course / "autograded" / student / "ps5" / "ps5.ipynb", as_version=4)
        for cell in nb.cells:
            if not cell.metadata.get("nbgrader", {}).get("grade"):
                continue
            results = [o for o in cell.outputs if o.output_type == "execute_result"]
            assert len(results) == 1 and float(results[0].data["text/plain"]) >= 0.0
            assert not [o for o in cell.outputs if o.output_type == "error" or o.get("name") == "stderr"]


def test_feedback_explains_the_mistakes(course):
    def feedback(student: str) -> str:
        return (course / "feedback" / student / "ps5" / "ps5.html").read_text()

    partly = feedback("s2_partly_wrong")
    assert "misconception softmax-no-max-subtraction" in partly
    assert "subtract the max along" in partly  # the hint
    assert "misconception nll-missing-minus" in partly
    assert "regex_labels.is_cat: not attempted" in partly
    assert "is this right?" in partly  # the student's warning is shown as their output, not scored
    broken = feedback("s3_broken")
    assert f"took longer than {TIMEOUT} s (an infinite loop" in broken
    assert "undefined_scale" in broken and "NameError" in broken
    assert "✓ losses.binary_softmax: passed 1/1" in broken  # after the interrupted cell
    assert "✓ regex_labels.breed_from_filename: passed 3/3" in feedback("s1_correct")


def test_the_hidden_seed_is_written_nowhere(course):
    for path in course.rglob("*"):
        if path.is_file() and path.name != "imgclass-course.toml":
            assert str(SEED).encode() not in path.read_bytes(), path
    release = (course / "release" / "ps5" / "ps5.ipynb").read_text()
    assert "HIDDEN TESTS" not in release and "hidden=True" not in release
    # nbgrader shows hidden blocks in its feedback: there is only the call in them
    page = html.unescape(
        re.sub(r"<[^>]+>", "", (course / "feedback" / "s1_correct" / "ps5" / "ps5.html").read_text())
    )
    blocks = re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)\n### END HIDDEN TESTS", page, flags=re.S)
    assert sorted(blocks) == sorted(
        f'check("{e.id}", {e.func}, points={e.points:g}, hidden=True)' for e in specs.ALL
    )
