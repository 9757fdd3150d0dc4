"""nbgrader integration: the test cells' ``check`` and ``grade nbgrader init``.

A test cell of the generated notebook reads::

    from grader.nbgrader import check
    check("losses.softmax", softmax, points=2)
    ### BEGIN HIDDEN TESTS
    check("losses.softmax", softmax, points=2, hidden=True)
    ### END HIDDEN TESTS

nbgrader 0.9 scores a test cell by its first result: a number is partial credit, but a numpy/torch
scalar, a string, ``False`` or no output count as FULL credit, a number above the points stops the
whole notebook's autograde, and anything on stderr gives 0. So :func:`check` returns a plain
``float`` clamped to ``[0, points]``, never raises, ignores warnings and keeps stderr empty; its
explanation goes to stdout, which nbgrader shows in the feedback. The grading itself is
:mod:`grader.checker`'s: the function is re-created from the notebook's source and run in a
sandboxed worker, never trusted in the kernel.

Hidden cases come from an instructor's hidden seed through seeded generators inside the grader: the
hidden block holds only the call, never a case or a seed (nbgrader shows hidden blocks in its
feedback). At autograde time the seed is read from the course config, found as

1. ``$IMGCLASS_COURSE_CONFIG`` (a path), if set; else
2. ``<course>/imgclass-course.toml`` when the kernel runs in ``<course>/autograded/<student>/<ps>/``
   (autograde) or ``<course>/source/<ps>/`` (the instructor validating the source notebook).

Never from files next to the notebook, which a student could have submitted. ``grade nbgrader init``
writes that file with a fresh random seed outside ``source/``, so ``generate_assignment`` never
copies it into a release. The seed is never in any notebook, and never in the kernel: only the
grading service (a separate process) reads the file, after its fork-server has started.
"""

from __future__ import annotations

import ast
import contextlib
import io
import math
import os
import secrets
import sys
import warnings
from pathlib import Path
from typing import Any

import click

from grader.checker import COURSE_CONFIG_ENV, grade_function

COURSE_FILE = "imgclass-course.toml"
#: The per-cell timeout written into nbgrader_config.py. A test cell runs the public check and, at
#: autograde, the hidden one; each stops at the kit's own per-exercise timeout (``timeout`` in the
#: course file), so this only has to cover the grading service's start-up plus twice that.
EXECUTE_TIMEOUT = 60
#: The kit's per-exercise timeout written into a new course file (seconds).
COURSE_TIMEOUT = 10


def course_config(cwd: str | os.PathLike[str] | None = None) -> Path | None:
    """The instructor's course file for this nbgrader run, or None (see the module docstring)."""
    env = os.environ.get(COURSE_CONFIG_ENV)
    if env:
        return Path(env).resolve()
    here = Path(cwd if cwd is not None else os.getcwd()).resolve()
    roots = []
    if len(here.parents) >= 3 and here.parents[1].name == "autograded":
        roots.append(here.parents[2])
    if len(here.parents) >= 2 and here.parent.name == "source":
        roots.append(here.parents[1])
    for root in roots:
        if (root / "nbgrader_config.py").is_file() and (root / COURSE_FILE).is_file():
            return root / COURSE_FILE
    return None


def clamp(score: Any, points: float) -> float:
    """A plain float in [0, points]: what nbgrader reads as partial credit."""
    try:
        value = float(score)
    except (TypeError, ValueError):
        return 0.0
    top = float(points) if math.isfinite(float(points)) and float(points) > 0 else 0.0
    if not math.isfinite(value):
        return 0.0
    return float(min(max(value, 0.0), top))


def check(exercise_id: str, fn: Any, points: float | None = None, hidden: bool = False) -> float:
    """Grade ``fn`` as ``exercise_id`` and return its score for nbgrader (see the module docstring).

    ``points``: the cell's points (default: the kit's registry, or the course file). ``hidden``: also
    run the instructor's hidden cases; prints only what they add, the public explanation having been
    printed by the public check just before.
    """
    out = sys.stdout
    buffer = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(buffer):
            warnings.simplefilter("ignore")
            score = _check(exercise_id, fn, points, hidden, out)
    except Exception as e:  # never raise: a crash here would hide every later cell's feedback
        _say(out, f"{exercise_id}: could not be graded ({type(e).__name__}: {e}). Score 0.")
        score = 0.0
    if buffer.getvalue().strip():
        _say(out, buffer.getvalue().rstrip())
    return score


def _say(out: Any, text: str) -> None:
    with contextlib.suppress(Exception):
        print(text, file=out, flush=True)


def _check(exercise_id: str, fn: Any, points: float | None, hidden: bool, out: Any) -> float:
    from grader.errors import GraderError

    if points is not None:
        try:
            points = float(points)
        except (TypeError, ValueError):
            points = None
    config = course_config()
    try:
        checked = grade_function(exercise_id, fn, hidden=hidden, config=config, points=points)
    except GraderError as e:
        _say(out, f"{exercise_id}: could not be graded: {e}. Score 0.")
        return 0.0
    result = checked.result
    _say(out, checked.text("hidden" if hidden else "full").rstrip())
    return clamp(result.score, points if points is not None else result.max_score)


# ----------------------------------------------------------------------------- grade nbgrader ...


NBGRADER_CONFIG = """\
# nbgrader configuration for an imgclass-kit course (written by `grade nbgrader init`).
c = get_config()  # noqa: F821 - provided by nbgrader

# Per-cell time limit in seconds. Each test cell runs the kit's public check and, at autograde, the
# hidden one; both stop at the kit's own per-exercise timeout (`timeout` in {course_file}), so this
# only has to cover the grading service's start-up plus twice that.
c.Execute.timeout = {timeout}
"""

COURSE_TOML = """\
# imgclass-kit course settings (written by `grade nbgrader init`). Keep this file private: it holds
# the hidden seed. It lives outside source/, so nbgrader never copies it into a release; at autograde
# time the test cells find it here, in the folder that holds autograded/<student>/<assignment>/.
[grading]
hidden_seed = {seed}
timeout = {timeout}                     # seconds per exercise (a student's infinite loop stops here)

[points]                         # points per exercise; `grade nbgrader init` writes them into the cells
"""


def init_course(
    course: Path,
    assignment: str,
    *,
    solutions: Path | None = None,
    only: tuple[str, ...] = (),
    force: bool = False,
) -> list[str]:
    """Write nbgrader_config.py, imgclass-course.toml and source/<assignment>/<assignment>.ipynb."""
    from grader import notebook, specs
    from grader.errors import UsageError
    from grader.settings import load_course

    if not assignment or not all(ch.isalnum() or ch in "-_" for ch in assignment):
        raise UsageError(f"Assignment names may use letters, digits, - and _ only: {assignment!r}")
    sol_dir = solutions or notebook.kit_folder("solutions")
    if sol_dir is None or not sol_dir.is_dir():
        raise UsageError(
            "The reference solutions were not found: pass --solutions DIR (the kit's solutions/ folder)"
        )
    course.mkdir(parents=True, exist_ok=True)
    done: list[str] = []
    config_file = course / "nbgrader_config.py"
    if config_file.exists() and not force:
        done.append(f"kept {config_file} (it exists; check that it sets c.Execute.timeout)")
    else:
        config_file.write_text(NBGRADER_CONFIG.format(timeout=EXECUTE_TIMEOUT, course_file=COURSE_FILE))
        done.append(f"wrote {config_file}")
    course_file = course / COURSE_FILE
    if course_file.exists():
        done.append(f"kept {course_file} (its hidden seed and points are used)")
    else:
        seed = secrets.randbelow(2**62)
        course_file.write_text(COURSE_TOML.format(seed=seed, timeout=COURSE_TIMEOUT))
        with contextlib.suppress(OSError):
            course_file.chmod(0o600)
        done.append(f"wrote {course_file} (private: it holds the hidden seed)")
    settings = load_course(course_file)
    exercises = specs.select(only or settings.exercises)
    nb = notebook.nbgrader_notebook(exercises, settings.points, solutions=sol_dir)
    target = course / "source" / assignment / f"{assignment}.ipynb"
    if target.exists() and not force:
        raise UsageError(f"{target} exists: pass --force to overwrite it")
    notebook.write_notebook(nb, target)
    done.append(
        f"wrote {target} ({len(exercises)} exercises, {sum(settings.points.get(e.id, e.points) for e in exercises):g} points)"
    )
    return done


def verify_points(path: Path) -> list[str]:
    """Problems with a notebook's test cells: the points in nbgrader's metadata and in the
    ``check(..., points=...)`` calls must agree (nbgrader itself never compares them)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    problems = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not meta.get("grade") or cell.get("cell_type") != "code":
            continue
        gid, points = meta.get("grade_id", "?"), meta.get("points")
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            problems.append(f"{gid}: the test cell does not parse")
            continue
        calls = [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "check"
        ]
        if not calls:
            problems.append(f"{gid}: no check(...) call")
        for call in calls:
            given = next((k.value for k in call.keywords if k.arg == "points"), None)
            value = given.value if isinstance(given, ast.Constant) else None
            if not isinstance(value, (int, float)) or points is None or float(value) != float(points):
                problems.append(f"{gid}: check(...) says points={value!r}, the cell's metadata {points}")
    return problems


@click.group("nbgrader")
def nbgrader_cli() -> None:
    """Use the kit with nbgrader (install with `pip install imgclass-kit[nbgrader]`)."""


@nbgrader_cli.command("init")
@click.argument("course", type=click.Path(path_type=Path))
@click.option("--assignment", default="ps5", show_default=True, help="The assignment's name.")
@click.option("--only", multiple=True, help="Only this exercise, function or module (repeatable).")
@click.option(
    "--solutions",
    type=click.Path(path_type=Path, file_okay=False),
    help="The kit's solutions/ folder [default: the checkout's].",
)
@click.option("--force", is_flag=True, help="Overwrite the notebook and nbgrader_config.py.")
def init(course: Path, assignment: str, only: tuple[str, ...], solutions: Path | None, force: bool) -> None:
    """Write an nbgrader course in COURSE: nbgrader_config.py, imgclass-course.toml (the hidden
    seed, private) and source/ASSIGNMENT/ASSIGNMENT.ipynb (lesson, solution and test cells)."""
    from grader.errors import GraderError

    try:
        for line in init_course(course, assignment, solutions=solutions, only=only, force=force):
            click.echo(line)
    except GraderError as e:
        click.echo(f"grade: error: {e}", err=True)
        sys.exit(int(e.exit_code))
    click.echo(
        f"next: cd {course} && nbgrader generate_assignment {assignment}   "
        "(then release, collect, nbgrader autograde, generate_feedback, export)"
    )


@nbgrader_cli.command("verify")
@click.argument("notebook", type=click.Path(path_type=Path, dir_okay=False, exists=True))
def verify(notebook: Path) -> None:
    """Check that each test cell's check(..., points=N) agrees with its nbgrader points."""
    problems = verify_points(notebook)
    for p in problems:
        click.echo(p)
    if problems:
        sys.exit(1)
    click.echo(f"{notebook}: the points of every test cell agree")
