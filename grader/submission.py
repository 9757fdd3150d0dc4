"""Find and read a submission: a folder of exercise modules, a single ``.py``, or an ``.ipynb``.

Student files are read as text and never imported here (they run only in a worker, loaded under a
private module name). Notebooks keep only top-level definitions, imports and simple constants:
exploration code, IPython magics and ``!`` lines are skipped, each with a note.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

from grader.errors import SubmissionError

MAX_FILE_BYTES = 2 * 1024 * 1024
SINGLE = "submission"

#: Calls allowed in a notebook's top-level assignments (anything else is exploration code).
SAFE_CALLS = {
    "re.compile",
    "torch.tensor",
    "tensor",
    "Path",
    "pathlib.Path",
    "slice",
    "range",
    "list",
    "dict",
    "set",
    "tuple",
    "frozenset",
    "str",
    "int",
    "float",
    "bool",
    "os.path.join",
    "math.sqrt",
    "math.log",
    "math.exp",
    "math.radians",
    "compile",
}


@dataclass(frozen=True)
class Unit:
    """One piece of source executed in order (a file, or a notebook cell)."""

    name: str  #: display name used in tracebacks, e.g. ``exercises/losses.py`` or ``nb.ipynb cell 4``
    text: str


@dataclass(frozen=True)
class Source:
    """The source of one student module (or of a whole single-file submission)."""

    key: str
    units: tuple[Unit, ...]

    @cached_property
    def syntax_error(self) -> str | None:
        """The first unit's syntax error, e.g. ``ana.py, line 8: invalid syntax (SyntaxError)``.

        Found when first asked for (in a batch: by the grading process, which parses each unit
        anyway for its review, never by the batch parent)."""
        return next((e for u in self.units if (e := syntax_error(u.text, u.name))), None)


@dataclass(frozen=True)
class Submission:
    """What the grader runs: module name -> source, plus notes for the student."""

    name: str
    sources: Mapping[str, Source]
    single: Source | None = None  #: a single .py/.ipynb defining every function
    notes: tuple[str, ...] = field(default_factory=tuple)

    def source_for(self, module: str) -> Source | None:
        return self.single if self.single is not None else self.sources.get(module)

    def all_sources(self) -> list[Source]:
        return [self.single] if self.single is not None else list(self.sources.values())

    @property
    def syntax_errors(self) -> list[str]:
        return [s.syntax_error for s in self.all_sources() if s.syntax_error]

    def digest(self) -> str:
        """A content hash: same files, same digest (what batch grading keys on)."""
        h = hashlib.sha256()
        for src in self.all_sources():
            h.update(src.key.encode("utf-8", "surrogatepass") + b"\0")
            for u in src.units:
                h.update(u.name.encode("utf-8", "surrogatepass") + b"\0")
                h.update(u.text.encode("utf-8", "surrogatepass") + b"\0")
        return h.hexdigest()


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _refuse(message: str) -> SubmissionError:
    """A SubmissionError whose message stays one plain line, whatever the file names in it hold
    (a name with a newline or a right-to-left override could otherwise forge the next line)."""
    return SubmissionError(_UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode(), message))


def _read_text(path: Path, root: Path | None = None) -> str:
    if root is not None:
        real, real_root = os.path.realpath(path), os.path.realpath(root)
        if os.path.commonpath([real, real_root]) != real_root:
            raise _refuse(f"{path.name} points outside the submission (a symlink?)")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise _refuse(f"Cannot read {path}: {e.strerror or e}") from None
    if size > MAX_FILE_BYTES:
        raise _refuse(f"{path.name} is too large ({size:,} bytes; the limit is {MAX_FILE_BYTES:,})")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise _refuse(f"Cannot read {path}: {e.strerror or e}") from None
    if b"\0" in data:
        raise _refuse(f"{path.name} is not a text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _refuse(f"{path.name} is not UTF-8 text (byte {e.start})") from None


@lru_cache(maxsize=16)
def parse(text: str) -> ast.Module | SyntaxError | ValueError:
    """The syntax tree of a student's source, or what stops it from parsing (ValueError: a NUL).

    Cached: the syntax check and the review (grader.static) of one unit share one parse. The
    tree is shared too: read it, never change it.
    """
    try:
        tree = compile(text, "<unit>", "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except (SyntaxError, ValueError) as e:
        return e
    assert isinstance(tree, ast.Module)
    return tree


def syntax_error(text: str, name: str) -> str | None:
    tree = parse(text)
    if isinstance(tree, SyntaxError):
        line = f", line {tree.lineno}" if tree.lineno else ""
        return f"{name}{line}: {tree.msg} (SyntaxError)"
    if isinstance(tree, ValueError):
        return f"{name}: {tree}"
    return None


def _source(key: str, units: list[Unit]) -> Source:
    return Source(key, tuple(units))


# ----------------------------------------------------------------------------- notebooks

_MAGIC = re.compile(r"^\s*(%|!)|^\s*\w+\s*=\s*!")


def _call_name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_call_name(node.value)}.{node.attr}"
    return "?"


def _constant_like(node: ast.AST) -> bool:
    return all(not isinstance(n, ast.Call) or _call_name(n.func) in SAFE_CALLS for n in ast.walk(node))


def _is_grader_import(stmt: ast.stmt) -> bool:
    """``import grader`` / ``from grader.nbgrader import check``: the kit's own helpers, never student code."""
    if isinstance(stmt, ast.Import):
        return all(a.name == "grader" or a.name.startswith("grader.") for a in stmt.names)
    if isinstance(stmt, ast.ImportFrom):
        return stmt.level == 0 and (stmt.module == "grader" or (stmt.module or "").startswith("grader."))
    return False


def _bound_names(stmt: ast.stmt) -> set[str]:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in stmt.names}
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
    return {n.id for t in targets if t is not None for n in ast.walk(t) if isinstance(n, ast.Name)}


def _keep(stmt: ast.stmt, defined: set[str]) -> bool:
    """Definitions, imports, and constants built only from names the kept code defines."""
    if _is_grader_import(stmt):
        return False
    if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
        reads = {
            n.id for n in ast.walk(stmt.value) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
        }
        return _constant_like(stmt.value) and reads <= defined | _BUILTINS
    return False


_BUILTINS = set(dir(__import__("builtins")))


def notebook_units(text: str, nb_name: str) -> tuple[list[Unit], list[str]]:
    """Definitions from the code cells of a notebook, line numbers preserved; plus notes on what was skipped."""
    import nbformat

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nb = nbformat.reads(text, as_version=4)
    except Exception as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise _refuse(f"{nb_name} is not a valid notebook ({reason[:120]})") from None
    units: list[Unit] = []
    notes: list[str] = []
    skipped_statements = 0
    defined: set[str] = set()  # names bound by the statements kept so far (in cell order)
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        raise _refuse(f"{nb_name} is not a valid notebook (no cells)")
    for number, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        if isinstance(src, list):
            src = "".join(s for s in src if isinstance(s, str))
        if not isinstance(src, str) or not src.strip():
            continue
        name = f"{nb_name} cell {number}"
        try:
            src.encode("utf-8")
        except UnicodeEncodeError:
            raise _refuse(
                f"{nb_name} is not a valid notebook (cell {number} is not valid Unicode text)"
            ) from None
        if src.lstrip().startswith("%%"):
            notes.append(f"{name}: skipped a cell magic ({src.strip().splitlines()[0][:40]})")
            continue
        lines = src.splitlines()
        for i, line in enumerate(lines):
            if _MAGIC.match(line):
                notes.append(f"{name}, line {i + 1}: skipped an IPython line ({line.strip()[:40]})")
                lines[i] = ""
        code = "\n".join(lines) + "\n"
        try:
            tree = ast.parse(code, filename=name)
        except (SyntaxError, ValueError):  # ValueError: a NUL character in the cell
            units.append(Unit(name, code))  # reported as a syntax error with its line
            continue
        drop: set[int] = set()
        keep_lines: set[int] = set()
        for stmt in tree.body:
            span = range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1)
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                span = range(min([stmt.lineno, *(d.lineno for d in stmt.decorator_list)]), span.stop)
            if _keep(stmt, defined):
                keep_lines.update(span)
                defined |= _bound_names(stmt)
            else:
                drop.update(span)
                skipped_statements += not _is_grader_import(stmt)
        if not keep_lines:
            continue
        out = [line if (i + 1) not in drop or (i + 1) in keep_lines else "" for i, line in enumerate(lines)]
        units.append(Unit(name, "\n".join(out) + "\n"))
    if skipped_statements:
        notes.append(
            f"{nb_name}: ran only definitions, imports and constants; skipped {skipped_statements} other "
            "top-level statement(s) (exploration code is not run by the grader)"
        )
    return units, notes


# ----------------------------------------------------------------------------- finding


def _single(path: Path, root: Path | None = None) -> Submission:
    text = _read_text(path, root)
    if path.suffix == ".ipynb":
        units, notes = notebook_units(text, path.name)
        return Submission(path.name, {}, single=_source(SINGLE, units), notes=tuple(notes))
    return Submission(path.name, {}, single=_source(SINGLE, [Unit(path.name, text)]))


def _folder(path: Path, modules: Iterable[str], name: str, root: Path) -> Submission:
    """The exercise modules in ``path``; each must really lie inside ``root``, the submission."""
    sources = {}
    for module in modules:
        f = path / f"{module}.py"
        if f.is_file():
            display = f"{path.name}/{f.name}"
            sources[module] = _source(module, [Unit(display, _read_text(f, root))])
    return Submission(name, sources)


def read_submission(path: str | os.PathLike[str], modules: Iterable[str]) -> Submission:
    """Read a submission from a folder of modules, a folder holding ``exercises/``, a ``.py`` or an ``.ipynb``."""
    modules = tuple(modules)
    p = Path(path)
    if not p.exists():
        raise _refuse(f"No such file or folder: {p}")
    if p.is_symlink():
        # A submission that is itself a link must stay beside it (a link to the reference solutions,
        # unpacked from a student's archive into a class folder, would otherwise be graded).
        real, parent = os.path.realpath(p), os.path.realpath(p.parent)
        if os.path.commonpath([real, parent]) != parent:
            raise _refuse(f"{p.name} points outside the submission (a symlink?)")
    if p.is_file():
        if p.suffix not in (".py", ".ipynb"):
            raise _refuse(f"{p.name} is not a .py module or an .ipynb notebook")
        return _single(p)
    if not p.is_dir():
        raise _refuse(f"{p} is not a file or a folder")
    if any((p / f"{m}.py").is_file() for m in modules):
        return _folder(p, modules, p.name, p)
    if (p / "exercises").is_dir() and any((p / "exercises" / f"{m}.py").is_file() for m in modules):
        return _folder(p / "exercises", modules, f"{p.name}/exercises", p)
    candidates = sorted(
        f
        for f in p.iterdir()
        if f.is_file() and f.suffix in (".py", ".ipynb") and f.name not in ("__init__.py", "setup.py")
    )
    notebooks = [f for f in candidates if f.suffix == ".ipynb"]
    scripts = [f for f in candidates if f.suffix == ".py"]
    if len(notebooks) > 1:
        raise _refuse(f"Two or more candidate notebooks in {p}: {', '.join(f.name for f in notebooks[:4])}")
    if len(notebooks) == 1 and not scripts:
        return _single(notebooks[0], p)
    if len(scripts) == 1 and not notebooks:
        return _single(scripts[0], p)
    if candidates:
        raise _refuse(
            f"Cannot tell which file to grade in {p}: {', '.join(f.name for f in candidates[:4])} "
            "(expected exercises/, one .py or one .ipynb)"
        )
    raise _refuse(f"No exercises/ folder, .py or .ipynb found at {p}")
