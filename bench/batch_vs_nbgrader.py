"""Benchmark 2: the same 30 submissions through real `nbgrader autograde` and through `grade batch`.

Run: ``.venv/bin/python bench/batch_vs_nbgrader.py [-n 30] [--jobs 2]`` (slow: nbgrader takes
about 4 s per notebook, so ~2-3 minutes).

A course is built with nbformat the way an instructor writes one for nbgrader 0.9.6 (cell
metadata per /work/shared/notes/nbgrader.md): an imports cell, one solution cell per kit function
(``### BEGIN SOLUTION`` / ``### END SOLUTION``) and five 2-point test cells with plain asserts
against PyTorch (softmax, log_softmax, nll_loss, cross_entropy, breed_from_filename), as in the
measured nbgrader baseline. ``nbgrader generate_assignment`` makes the release; 30 students hand in
``submitted/<student>/ps1/ps1.ipynb`` with every function filled in (10 correct, 20 with one known
mistake from the zoo). Then, timed in this run, one after the other:

* ``nbgrader autograde ps1`` (one kernel per notebook, each importing torch);
* ``grade batch COURSE --out OUT --jobs 2`` on the same notebooks (which grades every kit
  exercise, 150+ generated cases each, in sandboxed workers).

Prints both wall times, the speed-up end to end and per notebook at steady state (a batch pays a
fixed start-up: importing torch and building the plan take more than 1/100 of nbgrader's run), and
which students each tool found perfect on the five tested functions (the kit's cases are stricter:
it catches mistakes the plain asserts miss). Target (issue 4): >= 100x faster than nbgrader.
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "tests" / "submissions"
BIN = Path(sys.executable).parent
GRADE = str(BIN / "grade")
NBGRADER = str(BIN / "nbgrader")
#: nbgrader runs `alembic` and the kernel from PATH: the venv's bin/ goes first.
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}

TESTED = ["softmax", "log_softmax", "nll_loss", "cross_entropy", "breed_from_filename"]
KIT_IDS = {
    "softmax": "losses.softmax",
    "log_softmax": "losses.log_softmax",
    "nll_loss": "losses.nll_loss",
    "cross_entropy": "losses.cross_entropy",
    "breed_from_filename": "regex_labels.breed_from_filename",
}
MUTANTS = [
    ("softmax", "softmax_no_max_subtraction"),
    ("softmax", "softmax_wrong_dim"),
    ("log_softmax", "log_softmax_naive"),
    ("log_softmax", "log_softmax_forgot_log"),
    ("nll_loss", "nll_missing_minus"),
    ("nll_loss", "nll_sum_not_mean"),
    ("cross_entropy", "ce_sum_not_mean"),
    ("cross_entropy", "ce_missing_minus"),
    ("breed_from_filename", "regex_unescaped_dot"),
    ("breed_from_filename", "regex_captures_extension"),
]
TESTS = {
    "softmax": """x = torch.randn(8, 5, generator=torch.Generator().manual_seed(1)) * 30
assert torch.allclose(softmax(x, dim=-1), torch.softmax(x, dim=-1), atol=1e-6)
assert torch.allclose(softmax(x, dim=0), torch.softmax(x, dim=0), atol=1e-6)""",
    "log_softmax": """x = torch.randn(8, 5, generator=torch.Generator().manual_seed(2)) * 100
assert torch.allclose(log_softmax(x, dim=-1), torch.log_softmax(x, dim=-1), atol=1e-4)""",
    "nll_loss": """lp = torch.log_softmax(torch.randn(6, 4, generator=torch.Generator().manual_seed(3)), dim=-1)
t = torch.tensor([0, 3, 1, 2, 2, 0])
assert torch.allclose(nll_loss(lp, t), F.nll_loss(lp, t), atol=1e-6)
assert torch.allclose(nll_loss(lp, t, reduction="sum"), F.nll_loss(lp, t, reduction="sum"), atol=1e-5)""",
    "cross_entropy": """x = torch.randn(6, 4, generator=torch.Generator().manual_seed(4)) * 3
t = torch.tensor([0, 3, 1, 2, 2, 0])
assert torch.allclose(cross_entropy(x, t), F.cross_entropy(x, t), atol=1e-5)""",
    "breed_from_filename": """assert breed_from_filename("great_pyrenees_173.jpg") == "great_pyrenees"
assert breed_from_filename("images/Abyssinian_100.jpg") == "Abyssinian\"""",
}


def _meta(**kw: object) -> dict[str, object]:
    return {"nbgrader": {"schema_version": 3, **kw}}


def split_correct() -> tuple[str, dict[str, str]]:
    """all_correct.py -> (imports, {function: source})."""
    text = (ZOO / "all_correct.py").read_text()
    tree = ast.parse(text)
    lines = text.splitlines()
    imports, functions = [], {}
    for node in tree.body:
        src = "\n".join(lines[node.lineno - 1 : node.end_lineno])
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append(src)
        elif isinstance(node, ast.FunctionDef):
            functions[node.name] = src
    return "\n".join(imports), functions


def source_notebook(imports: str, functions: dict[str, str]) -> nbformat.NotebookNode:
    cells = [
        nbformat.v4.new_markdown_cell("# Problem set 1: pet breeds (fastai book, chapter 5)"),
        nbformat.v4.new_code_cell(
            imports, metadata=_meta(grade=False, grade_id="imports", locked=True, solution=False)
        ),
    ]
    for name, src in functions.items():
        head = src.splitlines()[0]
        body = "\n".join(src.splitlines()[1:])
        cells.append(
            nbformat.v4.new_code_cell(
                f"{head}\n    ### BEGIN SOLUTION\n{body}\n    ### END SOLUTION",
                metadata=_meta(grade=False, grade_id=f"{name}_sol", locked=False, solution=True),
            )
        )
        if name in TESTS:
            cells.append(
                nbformat.v4.new_code_cell(
                    TESTS[name],
                    metadata=_meta(
                        grade=True, grade_id=f"{name}_test", locked=True, points=2, solution=False
                    ),
                )
            )
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def student_notebook(
    release: Path, functions: dict[str, str], mutant: tuple[str, str] | None
) -> nbformat.NotebookNode:
    nb = nbformat.read(release, as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if gid.endswith("_sol"):
            name = gid[: -len("_sol")]
            cell.source = functions[name]
            if mutant is not None and mutant[0] == name:
                cell.source = (ZOO / f"{mutant[1]}.py").read_text()
    return nb


def build_course(course: Path, n: int) -> dict[str, tuple[str, str] | None]:
    imports, functions = split_correct()
    (course / "source" / "ps1").mkdir(parents=True)
    nbformat.write(source_notebook(imports, functions), course / "source" / "ps1" / "ps1.ipynb")
    (course / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.root = {str(course)!r}\nc.Execute.timeout = 10\n"
    )
    made = subprocess.run(
        [NBGRADER, "generate_assignment", "ps1", "--force"],
        cwd=course,
        capture_output=True,
        text=True,
        env=ENV,
    )
    if made.returncode != 0:
        raise SystemExit(f"nbgrader generate_assignment failed:\n{made.stdout[-2000:]}{made.stderr[-3000:]}")
    release = course / "release" / "ps1" / "ps1.ipynb"
    rng = random.Random(7)
    students: dict[str, tuple[str, str] | None] = {}
    for i in range(n):
        student = f"st{i:02d}"
        mutant = None if i % 3 == 0 else rng.choice(MUTANTS)
        folder = course / "submitted" / student / "ps1"
        folder.mkdir(parents=True)
        nbformat.write(student_notebook(release, functions, mutant), folder / "ps1.ipynb")
        (folder / "timestamp.txt").write_text("2026-12-01 10:00:00.000000 UTC")
        students[student] = mutant
    return students


def nbgrader_scores(course: Path) -> dict[str, float]:
    db = sqlite3.connect(course / "gradebook.db")
    rows = db.execute(
        "SELECT student.id, SUM(grade.auto_score) FROM grade "
        "JOIN submitted_notebook ON grade.notebook_id = submitted_notebook.id "
        "JOIN submitted_assignment ON submitted_notebook.assignment_id = submitted_assignment.id "
        "JOIN student ON submitted_assignment.student_id = student.id GROUP BY student.id"
    ).fetchall()
    return {r[0]: float(r[1] or 0) for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    if not Path(NBGRADER).exists():
        raise SystemExit("nbgrader is not installed here: pip install 'imgclass-kit[nbgrader]'")
    with tempfile.TemporaryDirectory(prefix="imgclass-nbgrader-") as tmp:
        course = Path(tmp) / "course"
        students = build_course(course, args.n)
        print(
            f"{args.n} notebooks ({sum(m is None for m in students.values())} correct); {os.cpu_count()} cores; "
            f"load {os.getloadavg()[0]:.2f}"
        )
        start = time.perf_counter()
        nb = subprocess.run(
            [NBGRADER, "autograde", "ps1"], cwd=course, capture_output=True, text=True, env=ENV
        )
        nb_wall = time.perf_counter() - start
        if nb.returncode != 0:
            print(nb.stderr[-3000:])
            raise SystemExit("nbgrader autograde failed")
        out = Path(tmp) / "out"
        start = time.perf_counter()
        subprocess.run(
            [GRADE, "batch", str(course), "--out", str(out), "--jobs", str(args.jobs), "--progress", "none"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        kit_wall = time.perf_counter() - start
        nb_scores = nbgrader_scores(course)
        agree, kit_only, nb_only = 0, [], []
        for student, mutant in students.items():
            nb_perfect = nb_scores.get(student, 0.0) == 2 * len(TESTED)
            kit_perfect = all(_full(out, student, KIT_IDS[f]) for f in TESTED)
            if nb_perfect == kit_perfect:
                agree += 1
            elif nb_perfect:
                kit_only.append(f"{student} ({mutant[1] if mutant else 'correct'})")
            else:
                nb_only.append(f"{student} ({mutant[1] if mutant else 'correct'})")
        steady = _steady(out)
        nb_each = nb_wall / args.n
        print(f"nbgrader autograde:      {nb_wall:6.1f} s  ({nb_each:.2f} s per notebook)")
        print(
            f"grade batch --jobs {args.jobs}:   {kit_wall:6.1f} s  ({kit_wall / args.n:.2f} s per notebook; "
            f"steady {steady:.1f} notebooks/s)"
        )
        print(f"speed-up, end to end:            {nb_wall / kit_wall:.1f}x  [target >= 100x]")
        print(f"speed-up per notebook (steady):  {nb_each * steady:.1f}x")
        print(f"load now {os.getloadavg()[0]:.2f}")
        print(f"same verdict on the {len(TESTED)} tested functions: {agree}/{args.n} students")
        print(
            f"  mistakes only the kit caught (nbgrader's asserts passed them): {', '.join(kit_only) or 'none'}"
        )
        print(f"  mistakes only nbgrader caught: {', '.join(nb_only) or 'none'}")
        shutil.rmtree(course / "autograded", ignore_errors=True)


def _steady(out: Path) -> float:
    """Notebooks per second from the first to the last recorded result."""
    import datetime as dt

    db = sqlite3.connect(out / "gradebook.sqlite")
    stamps = sorted(
        dt.datetime.fromisoformat(r[0]).timestamp() for r in db.execute("SELECT graded_at FROM gradings")
    )
    db.close()
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0


def _full(out: Path, student: str, exercise: str) -> bool:
    db = sqlite3.connect(out / "gradebook.sqlite")
    row = db.execute(
        "SELECT e.status FROM exercise_results e JOIN students s ON s.current_submission = e.submission "
        "WHERE s.id = ? AND e.exercise = ?",
        (student, exercise),
    ).fetchone()
    db.close()
    return row is not None and row[0] == "passed"


if __name__ == "__main__":
    main()
