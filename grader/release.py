"""``grade release --out DIR``: build the student kit from the instructor's checkout.

The kit is built from an ALLOW-LIST, never by copying the checkout and deleting things:

- ``exercises/`` (the stubs and the student notebook), ``grader/`` (public seed only: hidden seeds
  live in course configs and the environment, never in code), ``templates/``, ``schemas/``;
- a generated ``pyproject.toml`` (``pip install .`` gives the student ``grade``; no ``[tool]``
  tables, so no course settings can ride along) and a generated student ``README.md``.

Nothing else is copied: no ``solutions/``, ``tests/``, ``bench/``, ``.ci/``, course configs or
hint state. After building, two guards run and the kit is deleted if either fires: no function
body of ``solutions/`` appears in any file (compared as normalised ASTs), and the hidden seed of
``--config``/``IMGCLASS_HIDDEN_SEED`` (when given) appears in no file.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import click

from grader.errors import ExitCode, GraderError, UsageError

#: Folders of the checkout that make up the student kit (copied whole, minus caches).
KIT_DIRS = ("exercises", "grader", "templates", "schemas")
#: Never copied from inside those folders.
IGNORED = (
    "__pycache__",
    "*.pyc",
    "*.pyo",
    ".ipynb_checkpoints",
    ".DS_Store",
    ".imgclass-hints.json",
    "_bundled",
)
#: A hidden seed shorter than this could be guessed (and would match unrelated numbers in the kit).
MIN_SEED_DIGITS = 6


@dataclass(frozen=True)
class Release:
    """What ``build_release`` made."""

    path: Path
    files: tuple[str, ...]  #: relative paths, sorted


def source_root() -> Path:
    """The instructor's checkout this grader runs from (where ``solutions/`` lives)."""
    root = Path(__file__).resolve().parent.parent
    missing = [d for d in KIT_DIRS if not (root / d).is_dir()]
    if missing or not (root / "pyproject.toml").is_file():
        raise UsageError(
            f"grade release needs the kit's source checkout (with {', '.join(KIT_DIRS)} and pyproject.toml); "
            f"{root} has no {', '.join(missing) or 'pyproject.toml'}"
        )
    return root


# ----------------------------------------------------------------------------- guards


def _function_bodies(source: str) -> Iterator[tuple[str, str]]:
    """(name, normalised body) of every function in ``source``: docstring dropped, formatting and
    comments gone (an AST dump without positions)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = list(node.body)
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]  # the docstring
            if body:
                yield node.name, ast.dump(ast.Module(body=body, type_ignores=[]), annotate_fields=False)


def _code_texts(path: Path) -> list[str]:
    """The Python code in a file: a module, or a notebook's code cells (magics dropped)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".py":
        return [text]
    if path.suffix == ".ipynb":
        try:
            cells = json.loads(text).get("cells", [])
        except (ValueError, AttributeError):
            return []
        out = []
        for cell in cells:
            if isinstance(cell, dict) and cell.get("cell_type") == "code":
                src = cell.get("source", "")
                src = "".join(src) if isinstance(src, list) else str(src)
                out.append(
                    "\n".join(line for line in src.splitlines() if line.lstrip()[:1] not in ("%", "!"))
                )
        return out
    return []


def solution_leaks(kit: Path, solutions: Path) -> list[str]:
    """Files of ``kit`` holding a function whose body is the same as one in ``solutions/``."""
    wanted: dict[str, str] = {}
    for sol in sorted(solutions.glob("*.py")):
        for name, body in _function_bodies(sol.read_text(encoding="utf-8")):
            wanted[body] = f"{sol.stem}.{name}"
    leaks = []
    for path in sorted(kit.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".ipynb"):
            for text in _code_texts(path):
                for name, body in _function_bodies(text):
                    if body in wanted:
                        leaks.append(f"{path.relative_to(kit)}: {name} is solutions' {wanted[body]}")
    return leaks


def seed_leaks(kit: Path, seed: int) -> list[str]:
    """Files of ``kit`` that contain the hidden seed (as a whole number)."""
    pattern = re.compile(rf"(?<![0-9]){seed}(?![0-9])".encode())
    return sorted(
        str(p.relative_to(kit)) for p in kit.rglob("*") if p.is_file() and pattern.search(p.read_bytes())
    )


def check_seed(seed: int | None) -> None:
    if seed is not None and len(str(abs(seed))) < MIN_SEED_DIGITS:
        raise UsageError(
            f"The hidden seed {seed} is too short to stay secret: use a random number of at least "
            f"{MIN_SEED_DIGITS} digits (python -c 'import secrets; print(secrets.randbelow(10**12))')"
        )


# ----------------------------------------------------------------------------- generated files


def _toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid TOML basic string


def _toml_list(items: Iterable[str]) -> str:
    items = list(items)
    if not items:
        return "[]"
    return "[\n" + "".join(f"    {_toml_str(i)},\n" for i in items) + "]"


def student_pyproject(root: Path) -> str:
    """The kit's pyproject.toml: the package, its dependencies and the ``grade`` script; no tools."""
    data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    project = data.get("project", {})
    wheel = data.get("tool", {}).get("hatch", {}).get("build", {}).get("targets", {}).get("wheel", {})
    include = {k: v for k, v in wheel.get("force-include", {}).items() if k.split("/")[0] in KIT_DIRS}
    extras = project.get("optional-dependencies", {})
    lines = [
        "# The student kit of imgclass-kit (generated by `grade release`).",
        "[build-system]",
        f"requires = {_toml_list(data.get('build-system', {}).get('requires', ['hatchling']))}",
        f"build-backend = {_toml_str(data.get('build-system', {}).get('build-backend', 'hatchling.build'))}",
        "",
        "[project]",
        f"name = {_toml_str(project.get('name', 'imgclass-kit'))}",
        'dynamic = ["version"]',
        f"description = {_toml_str(project.get('description', ''))}",
        'readme = "README.md"',
        f"requires-python = {_toml_str(project.get('requires-python', '>=3.11'))}",
        f"dependencies = {_toml_list(project.get('dependencies', []))}",
        "",
    ]
    if "notebook" in extras:
        lines += ["[project.optional-dependencies]", f"notebook = {_toml_list(extras['notebook'])}", ""]
    lines += [
        "[project.scripts]",
        'grade = "grader.cli:run"',
        "",
        "[tool.hatch.version]",
        'path = "grader/version.py"',
        "",
        "[tool.hatch.build.targets.wheel]",
        'packages = ["grader"]',
        "",
        "[tool.hatch.build.targets.wheel.force-include]",
        *(f"{_toml_str(k)} = {_toml_str(v)}" for k, v in sorted(include.items())),
        "",
    ]
    return "\n".join(lines)


def student_readme() -> str:
    """The kit's README.md: setup, the commands, and the exercises with their points."""
    from grader import specs

    rows = "\n".join(f"| `{e.id}` | {e.points:g} | `{e.title}` |" for e in specs.ALL)
    total = sum(e.points for e in specs.ALL)
    return f"""# imgclass-kit: chapter 5 exercises

Exercises for the image-classification lesson of the fastai book (chapter 5, "pet breeds"), with
an autograder that explains every mistake. Fill in the functions in `exercises/` (each stub's
docstring teaches what to do, with a worked example), then run `grade`.

## Setup (once)

```
python3 -m venv .venv && . .venv/bin/activate
pip install torch --index-url https://download.pytorch.org/whl/cpu   # optional: a small CPU-only torch
pip install .
```

## Work

```
grade                          # grades ./exercises
grade --only losses.softmax    # one exercise (or a module: --only losses)
grade --hint losses.softmax    # the next hint for an exercise (hints may cost points in your course)
grade my_notebook.ipynb        # a notebook, or one .py with all the functions
grade --list                   # the exercises and their points
```

A failing case is shown as a call you can paste into Python (some need `import grader.images` or
`import grader.simulate` first), with what was expected, what you returned and, when the grader
recognises it, the misconception by name. Your instructor may grade further cases you never see.

## The exercises

| exercise | points | function |
| --- | --- | --- |
{rows}

Total: {total:g} points.
"""


# ----------------------------------------------------------------------------- build


def build_release(
    out: str | os.PathLike[str], *, root: Path | None = None, hidden_seed: int | None = None
) -> Release:
    """Build the student kit in ``out`` (a new or empty folder); refuse and clean up on any leak."""
    root = (root or source_root()).resolve()
    out = Path(out).resolve()
    check_seed(hidden_seed)
    for d in KIT_DIRS:
        if out == root / d or str(out).startswith(str(root / d) + os.sep):
            raise UsageError(f"--out {out} is inside the kit's {d}/ folder: choose a folder outside it")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} already exists and is not an empty folder: choose a new one")
    out.mkdir(parents=True, exist_ok=True)
    try:
        for d in KIT_DIRS:
            shutil.copytree(root / d, out / d, ignore=shutil.ignore_patterns(*IGNORED))
        (out / "pyproject.toml").write_text(student_pyproject(root), encoding="utf-8")
        (out / "README.md").write_text(student_readme(), encoding="utf-8")
        problems = []
        if (root / "solutions").is_dir():
            problems += [f"a solution: {leak}" for leak in solution_leaks(out, root / "solutions")]
        if hidden_seed is not None:
            problems += [f"the hidden seed: {p}" for p in seed_leaks(out, hidden_seed)]
        problems += [
            f"a course config: {p.relative_to(out)}"
            for p in out.rglob("*.toml")
            if p != out / "pyproject.toml"
        ]
        if problems:
            raise GraderError(
                "The release would contain " + "; ".join(problems[:5]) + " — nothing was written"
            )
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    files = tuple(sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()))
    return Release(out, files)


@click.command("release")
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="A new (or empty) folder for the kit."
)
@click.option(
    "--config",
    type=click.Path(path_type=Path),
    help="Your course config: its hidden seed is checked NOT to appear in the kit (it is never copied).",
)
def release(out: Path, config: Path | None) -> None:
    """Build the student kit: stubs, the grader (public seed only), templates, README, pyproject.toml.

    Never copied: solutions/, tests/, bench/, .ci/, course configs, hidden seeds.
    """
    from grader.settings import load_course

    try:
        settings = load_course(config)
        made = build_release(out, hidden_seed=settings.hidden_seed)
    except GraderError as e:
        click.echo(f"grade: error: {e}", err=True)
        raise SystemExit(int(e.exit_code)) from None
    n_stubs = sum(1 for f in made.files if f.startswith("exercises/"))
    click.echo(f"Wrote the student kit to {made.path} ({len(made.files)} files, {n_stubs} in exercises/).")
    click.echo("Students: pip install . && grade   (no solutions, tests or course settings inside)")
    raise SystemExit(int(ExitCode.OK))
