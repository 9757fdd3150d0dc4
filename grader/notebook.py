"""The kit's notebooks, generated from the exercise stubs (and, for instructors, the solutions).

* ``exercises/chapter5.ipynb``, the student notebook: short lesson text, one stub cell per exercise
  (the function exactly as in ``exercises/<module>.py``) and a ``check(fn)`` cell after it.
  Regenerate it with ``python -m grader.notebook build``; ``--check`` fails when it is stale (a test
  does the same), so new exercises in the registry appear in it.
* The nbgrader source notebook (``grade nbgrader init``): the same lesson, a solution cell per
  exercise (the stub's signature and docstring, the body from ``solutions/`` between
  ``### BEGIN SOLUTION`` / ``### END SOLUTION``) and an autograder test cell per exercise.

Everything is written with plain nbformat, with fixed cell ids, so building twice gives the same file.
"""

from __future__ import annotations

import ast
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader import specs
from grader.errors import UsageError
from grader.spec import Exercise

NOTEBOOK_NAME = "chapter5.ipynb"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}

#: Lesson text per module, in our own words. A module without an entry gets its stub's docstring.
LESSONS: dict[str, tuple[str, str]] = {
    "regex_labels": (
        "Labels from file names",
        "A dataset does not always come with a table of labels. In the Oxford-IIIT Pet images the label "
        "is part of the file name: everything before the last underscore names the breed, and the number "
        "after it only tells the pictures apart. A regular expression can describe that pattern exactly, "
        "and it should reject a name that does not fit rather than quietly return a wrong label. In this "
        "dataset capitalisation carries information too: cat breeds start with a capital letter, dog "
        "breeds do not.",
    ),
    "presizing": (
        "Presizing",
        "A batch needs images of one size, and augmentation (flips, rotations, zooms, shifts) moves "
        "pixels around. Every resampling step blurs a little and can leave empty corners, so doing them "
        "one after another loses detail. Presizing keeps that loss small: first, per image, crop a "
        "square and resize it to a size comfortably larger than the training size; then, per batch, "
        "combine all the augmentations and the final resize into a single affine transformation, so the "
        "pixels are interpolated only once.",
    ),
    "losses": (
        "Softmax and cross-entropy",
        "A classifier produces one activation per class: any real number. Softmax turns them into "
        "probabilities, positive and adding up to one. The loss then looks only at the probability "
        "given to the correct class: minus its logarithm (the negative log likelihood) is small when "
        "the model is confident and right, and large when it is confident and wrong. Together the two "
        "make cross-entropy, the usual loss for classification. Written naively, `exp` overflows for "
        "large activations; subtracting the maximum first, and the log-sum-exp trick for the logarithm, "
        "keep every number finite.",
    ),
    "interpretation": (
        "Where the model goes wrong",
        "A confusion matrix counts, for every actual class, how often the model predicted each class: "
        "the diagonal holds the right answers, every other cell a kind of mistake. With dozens of "
        "classes the full matrix is hard to read, so it helps to list only the off-diagonal cells with "
        "the largest counts: the pairs of classes the model mixes up most often. Those are usually "
        "pairs that people find hard to tell apart too.",
    ),
    "learning_rates": (
        "Choosing learning rates",
        "The learning-rate finder trains for a short while, raising the learning rate a little after "
        "every mini-batch, and records the loss. Sensible choices can be read off that curve: somewhat "
        "below the rate where the loss was lowest, or where it fell fastest. When a pretrained model is "
        "fine-tuned, its early layers already hold useful general features, so they get smaller "
        "learning rates than the later ones: discriminative learning rates, spread over the parameter "
        "groups.",
    ),
}

STUDENT_INTRO = """\
# Chapter 5, by hand: image classification

This notebook holds every exercise of the kit. Each one is a function whose docstring says what to \
compute, with a worked example. Replace `raise NotImplementedError` with your code, run the cell, \
then run the `check(...)` cell below it.

`check` does not call the function living in this notebook. It re-creates it from the cells you \
have run (definitions, imports and simple constants; exploration code is left out), runs it in a \
separate sandboxed process on many inputs, compares the results with PyTorch's own and explains \
what went wrong: the simplest input that fails, as a call you can paste, what came back and what \
was expected, and the misconception behind it when it recognises one.

Stuck? In a terminal, `grade --hint losses.softmax` shows the next hint for an exercise. When you \
are done, `grade exercises/chapter5.ipynb` grades the whole notebook."""

STUDENT_OUTRO = """\
## Done?

`grade exercises/chapter5.ipynb` grades the whole notebook the same way, exercise by exercise, \
and prints your score."""

NBGRADER_INTRO = """\
# Problem set: image classification by hand (fastbook chapter 5)

Fill in each function where it says `YOUR CODE HERE` and run its cell, then run the test cell \
below it. The test grades your function in a sandbox, on many inputs, and explains any mistake. \
When your work is collected, the same tests run again, together with extra inputs you have not \
seen. Do not rename the functions; you may add helper functions and imports."""


# ----------------------------------------------------------------------------- sources


def kit_folder(name: str) -> Path | None:
    """``exercises`` or ``solutions`` of this checkout (or the copy bundled in a wheel)."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / name, here / "_bundled" / name):
        if candidate.is_dir():
            return candidate
    return None


@dataclass(frozen=True)
class ModuleSource:
    """The parts of one exercise module's source that the notebooks use."""

    text: str
    docstring: str
    setup: str  #: top-level statements other than the docstring and the functions (imports, ...)
    functions: Mapping[str, ast.FunctionDef]
    others: Mapping[str, str]  #: source of other top-level definitions and assignments, by name

    @classmethod
    def read(cls, path: Path) -> ModuleSource:
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        functions: dict[str, ast.FunctionDef] = {}
        others: dict[str, str] = {}
        setup: list[str] = []
        for i, stmt in enumerate(tree.body):
            segment = _segment(text, stmt)
            if i == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue
            if isinstance(stmt, ast.FunctionDef):
                functions[stmt.name] = stmt
                others[stmt.name] = segment
                continue
            setup.append(segment)
            for name in _bound_names(stmt):
                others[name] = segment
        imports_first = sorted(setup, key=lambda s: not s.startswith(("import ", "from ")))
        return cls(text, ast.get_docstring(tree) or "", "\n".join(imports_first), functions, others)


def _segment(text: str, stmt: ast.stmt) -> str:
    lines = text.splitlines()
    start = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", []))])
    return "\n".join(lines[start - 1 : stmt.end_lineno])


def _bound_names(stmt: ast.stmt) -> list[str]:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [stmt.name]
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in stmt.names]
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
    return [t.id for t in targets if isinstance(t, ast.Name)]


def _docstring_node(fn: ast.FunctionDef) -> ast.stmt | None:
    first = fn.body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return first
    return None


def stub_source(module: ModuleSource, func: str) -> str:
    return _segment(module.text, module.functions[func])


def _header_and_indent(module: ModuleSource, func: str) -> tuple[str, str]:
    """The stub's decorators, signature and docstring, and the body's indentation."""
    fn = module.functions[func]
    lines = module.text.splitlines()
    start = min([fn.lineno, *(d.lineno for d in fn.decorator_list)])
    doc = _docstring_node(fn)
    end = doc.end_lineno if doc is not None and doc.end_lineno else fn.body[0].lineno - 1
    return "\n".join(lines[start - 1 : end]), " " * fn.body[0].col_offset


def solution_body(solution: ModuleSource, func: str, stub: ModuleSource) -> str:
    """The solution's body (dedented, without its docstring), with the solution module's own helpers
    (definitions, constants and imports the stub module does not have) inlined at its top."""
    fn = solution.functions.get(func)
    if fn is None:
        raise UsageError(f"the solutions have no function {func}")
    lines = solution.text.splitlines()
    doc = _docstring_node(fn)
    if doc is not None and doc.end_lineno:
        start = doc.end_lineno + 1
    else:
        start = fn.body[0].lineno
        while start - 1 > fn.lineno and lines[start - 2].strip().startswith("#"):
            start -= 1
    body = textwrap.dedent("\n".join(lines[start - 1 : fn.end_lineno]))
    exercise_funcs = {e.func for e in specs.ALL}
    helpers = {
        name: src
        for name, src in solution.others.items()
        if name not in stub.others and name not in exercise_funcs
    }
    needed: list[str] = []

    def visit(node: ast.AST) -> None:
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and n.id in helpers and helpers[n.id] not in needed:
                needed.append(helpers[n.id])
                visit(ast.parse(helpers[n.id]))

    visit(fn)
    order = solution.text.index
    inlined = [textwrap.dedent(src) for src in sorted(needed, key=order)]
    return "\n\n".join([*inlined, body]) if inlined else body


def solved_source(stub: ModuleSource, solution: ModuleSource, func: str, *, markers: bool) -> str:
    """The stub's signature and docstring with the solution's body (between nbgrader's markers)."""
    header, indent = _header_and_indent(stub, func)
    body = textwrap.indent(solution_body(solution, func, stub), indent)
    if not markers:
        return f"{header}\n{body}"
    return f"{header}\n{indent}### BEGIN SOLUTION\n{body}\n{indent}### END SOLUTION"


# ----------------------------------------------------------------------------- building


def _cell_id(*parts: str) -> str:
    return "-".join("".join(ch if ch.isalnum() else "_" for ch in p) for p in parts)[:64]


def _lesson(module: str, number: int, source: ModuleSource) -> str:
    if module in LESSONS:
        title, text = LESSONS[module]
    else:
        paragraphs = [p for p in source.docstring.split("\n\n") if p.strip()]
        title = paragraphs[0].split("(")[0].strip().rstrip(".") if paragraphs else module
        text = " ".join(paragraphs[1].split()) if len(paragraphs) > 1 else ""
    return f"## {number}. {title}\n\n{text}".rstrip()


def _points(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _exercise_heading(ex: Exercise, module: ModuleSource, points: float) -> str:
    doc = ast.get_docstring(module.functions[ex.func]) or ""
    summary = doc.strip().splitlines()[0] if doc.strip() else ex.title
    unit = "point" if points == 1 else "points"
    return f"### `{ex.id}` ({_points(points)} {unit})\n\n{summary}"


def _check_call(ex: Exercise) -> str:
    unique = sum(1 for e in specs.ALL if e.func == ex.func) == 1
    return f"check({ex.func})" if unique else f'check("{ex.id}", {ex.func})'


def _modules(exercises: Sequence[Exercise]) -> list[tuple[str, list[Exercise]]]:
    grouped: dict[str, list[Exercise]] = {}
    for ex in exercises:
        grouped.setdefault(ex.module, []).append(ex)
    return list(grouped.items())


def _read_modules(folder: Path, modules: Sequence[str], what: str) -> dict[str, ModuleSource]:
    out = {}
    for m in modules:
        path = folder / f"{m}.py"
        if not path.is_file():
            raise UsageError(f"No {m}.py in {folder} (the kit's {what})")
        out[m] = ModuleSource.read(path)
    return out


def _new_notebook(cells: list[Any]) -> Any:
    import nbformat
    from nbformat import v4

    nb = v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.validate(nb)
    return nb


def student_notebook(
    exercises: Sequence[Exercise] | None = None,
    *,
    stubs: Path | None = None,
    solutions: Path | None = None,
) -> Any:
    """The student notebook (nbformat v4). With ``solutions``, the stubs' bodies are the solutions'
    (for the kit's own tests: executing it must show every check passing)."""
    from nbformat import v4

    exercises = tuple(exercises or specs.ALL)
    groups = _modules(exercises)
    stub_dir = stubs or kit_folder("exercises")
    if stub_dir is None:
        raise UsageError("The kit's exercises/ folder was not found")
    stub_mods = _read_modules(stub_dir, [m for m, _ in groups], "stubs")
    sol_mods = _read_modules(solutions, [m for m, _ in groups], "solutions") if solutions else {}
    cells = [
        v4.new_markdown_cell(STUDENT_INTRO, id="intro"),
        v4.new_code_cell("from grader import check", id="setup"),
    ]
    for number, (module, exs) in enumerate(groups, start=1):
        src = stub_mods[module]
        cells.append(v4.new_markdown_cell(_lesson(module, number, src), id=_cell_id(module, "lesson")))
        if src.setup:
            cells.append(v4.new_code_cell(src.setup, id=_cell_id(module, "imports")))
        for ex in exs:
            cells.append(
                v4.new_markdown_cell(
                    _exercise_heading(ex, src, ex.points), id=_cell_id(ex.module, ex.func, "about")
                )
            )
            code = (
                solved_source(src, sol_mods[module], ex.func, markers=False)
                if solutions
                else stub_source(src, ex.func)
            )
            cells.append(v4.new_code_cell(code, id=_cell_id(ex.module, ex.func)))
            cells.append(v4.new_code_cell(_check_call(ex), id=_cell_id(ex.module, ex.func, "check")))
    cells.append(v4.new_markdown_cell(STUDENT_OUTRO, id="outro"))
    return _new_notebook(cells)


def _nbgrader_meta(
    grade_id: str, *, solution: bool = False, points: float | None = None, locked: bool = False
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "grade": points is not None,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": 3,
        "solution": solution,
    }
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def autograder_cell(ex: Exercise, points: float) -> str:
    """An autograder test cell: the public check (what students see), then the hidden one."""
    call = f'check("{ex.id}", {ex.func}, points={_points(points)}'
    return (
        "from grader.nbgrader import check\n"
        f"{call})\n"
        "### BEGIN HIDDEN TESTS\n"
        f"{call}, hidden=True)\n"
        "### END HIDDEN TESTS"
    )


def nbgrader_notebook(
    exercises: Sequence[Exercise],
    points: Mapping[str, float],
    *,
    solutions: Path,
    stubs: Path | None = None,
) -> Any:
    """The nbgrader source notebook: lesson, solution cells and test cells (points from ``points``)."""
    from nbformat import v4

    groups = _modules(exercises)
    stub_dir = stubs or kit_folder("exercises")
    if stub_dir is None:
        raise UsageError("The kit's exercises/ folder was not found")
    stub_mods = _read_modules(stub_dir, [m for m, _ in groups], "stubs")
    sol_mods = _read_modules(solutions, [m for m, _ in groups], "solutions")
    cells = [v4.new_markdown_cell(NBGRADER_INTRO, id="intro")]
    for number, (module, exs) in enumerate(groups, start=1):
        src = stub_mods[module]
        cells.append(v4.new_markdown_cell(_lesson(module, number, src), id=_cell_id(module, "lesson")))
        if src.setup:
            gid = _cell_id(module, "imports")
            cells.append(v4.new_code_cell(src.setup, id=gid, metadata=_nbgrader_meta(gid, locked=True)))
        for ex in exs:
            p = float(points.get(ex.id, ex.points))
            base = f"{ex.module}_{ex.func}"
            cells.append(v4.new_markdown_cell(_exercise_heading(ex, src, p), id=_cell_id(base, "about")))
            sol = solved_source(src, sol_mods[module], ex.func, markers=True)
            cells.append(
                v4.new_code_cell(
                    sol, id=_cell_id(base, "sol"), metadata=_nbgrader_meta(f"{base}_sol", solution=True)
                )
            )
            cells.append(
                v4.new_code_cell(
                    autograder_cell(ex, p),
                    id=_cell_id(base, "test"),
                    metadata=_nbgrader_meta(f"{base}_test", points=p, locked=True),
                )
            )
    return _new_notebook(cells)


# ----------------------------------------------------------------------------- command line


def write_notebook(nb: Any, path: Path) -> None:
    import nbformat

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(nbformat.writes(nb), encoding="utf-8")


def committed_path() -> Path:
    folder = kit_folder("exercises")
    if folder is None:
        raise UsageError("The kit's exercises/ folder was not found")
    return folder / NOTEBOOK_NAME


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> int:
    """``python -m grader.notebook build [--check] [--out PATH]``: (re)write the student notebook."""
    import argparse

    import nbformat

    parser = argparse.ArgumentParser(prog="python -m grader.notebook", description=main.__doc__)
    parser.add_argument("command", choices=["build"])
    parser.add_argument(
        "--check", action="store_true", help="fail (exit 1) if the notebook is not up to date"
    )
    parser.add_argument("--out", type=Path, help=f"where to write it (default: exercises/{NOTEBOOK_NAME})")
    args = parser.parse_args(argv)
    path = args.out or committed_path()
    text = nbformat.writes(student_notebook())
    if args.check:
        current = path.read_text(encoding="utf-8") if path.is_file() else ""
        if current != text:
            out(f"{path} is out of date: run `python -m grader.notebook build`")
            return 1
        out(f"{path} is up to date")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    out(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
