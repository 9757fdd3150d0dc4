"""Synthetic classes for benchmarks and tests: realistic submissions built from the zoo.

A student's file is the correct reference submission (``tests/submissions/all_correct.py``) with
some functions replaced by zoo mutants (each mutant file defines the function with one known
mistake; appended, it overrides the correct one) or by the stub (``raise NotImplementedError``).
Every file gets a student-specific header, so no two submissions are byte-identical (nothing can be
deduplicated: every student is really graded).
"""

from __future__ import annotations

import ast
import random
from dataclasses import dataclass
from pathlib import Path

#: Zoo files that are not "a function with a known mistake" (crashes, loops, cheats, notebooks...).
NOT_MUTANTS = {
    "all_correct.py",
    "crash_segfault.py",
    "exit_in_function.py",
    "import_error.py",
    "infinite_loop.py",
    "make_notebook.py",
    "os_exit_at_import.py",
    "raises.py",
    "syntax_error.py",
    "hardcoded_lesson.py",
    "mutates_input.py",
    "grad_detached.py",
}


@dataclass(frozen=True)
class Zoo:
    folder: Path

    @property
    def correct(self) -> str:
        return (self.folder / "all_correct.py").read_text(encoding="utf-8")

    def mutants(self) -> list[Path]:
        return sorted(
            p
            for p in self.folder.glob("*.py")
            if p.name not in NOT_MUTANTS and not p.name.startswith(("forbidden_", "cheat_"))
        )

    def functions(self) -> list[str]:
        tree = ast.parse(self.correct)
        return [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")]


def student_source(zoo: Zoo, number: int, mutants: list[Path], stubs: list[str]) -> str:
    parts = [f'"""Submission of student s{number:04d}."""\n\nSTUDENT = {number}\n\n', zoo.correct]
    for m in mutants:
        parts.append(f"\n\n# ---- my version from {m.stem} ----\n\n" + m.read_text(encoding="utf-8"))
    for name in stubs:
        parts.append(f"\n\ndef {name}(*args, **kwargs):\n    raise NotImplementedError\n")
    return "".join(parts)


def make_class(zoo_folder: Path, out: Path, n: int, *, seed: int = 5) -> dict[str, str]:
    """Write ``n`` flat submissions ``s0001.py`` ... into ``out``; returns student -> kind.

    The mix: 30% correct, 40% one mistake, 20% two mistakes, 10% with two or three functions left as
    the stub. Kinds: ``correct``, ``mistakes``, ``partial``.
    """
    zoo = Zoo(zoo_folder)
    mutants = zoo.mutants()
    functions = zoo.functions()
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    kinds: dict[str, str] = {}
    for i in range(1, n + 1):
        r = rng.random()
        if r < 0.3:
            chosen, stubs, kind = [], [], "correct"
        elif r < 0.7:
            chosen, stubs, kind = rng.sample(mutants, 1), [], "mistakes"
        elif r < 0.9:
            chosen, stubs, kind = rng.sample(mutants, 2), [], "mistakes"
        else:
            chosen, stubs, kind = [], rng.sample(functions, rng.choice((2, 3))), "partial"
        student = f"s{i:04d}"
        (out / f"{student}.py").write_text(student_source(zoo, i, chosen, stubs), encoding="utf-8")
        kinds[student] = kind
    return kinds
