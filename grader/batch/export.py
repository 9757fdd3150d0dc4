"""Exports from the gradebook: ``grades.csv`` for an LMS and per-student feedback files.

Both are derived data: they can always be written again from the gradebook (``grade batch
--export-only``), and a run that was killed before writing them loses nothing.
"""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .gradebook import Gradebook

#: Feedback file name per report format (grader.render format names).
FEEDBACK_FILES: dict[str, str] = {
    "html": "report.html",
    "markdown": "report.md",
    "json": "report.json",
    "terminal": "report.txt",
    "gradescope": "results.json",
    "junit": "report.xml",
}
#: Cheap enough to render for every student while grading (a few ms each); html adds pictures.
DEFAULT_FEEDBACK = ("markdown", "json")
STAMP = ".graded"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()


def write_atomic(path: Path, text: str) -> None:
    """Write a file so that a reader (or a crash) never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ----------------------------------------------------------------------------- grades.csv


def _cell(value: Any) -> Any:
    """Text cells that a spreadsheet would run as a formula get a leading apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _points(x: float | None) -> str:
    if x is None:
        return ""
    return f"{round(float(x), 2):g}"


def write_grades_csv(book: Gradebook, path: Path) -> int:
    """One row per student: per-exercise points (overrides applied), total, status, late. Rows written."""
    exercises = book.exercises()
    header = [
        "student",
        "name",
        "email",
        *[e for e, _ in exercises],
        "total",
        "max_score",
        "status",
        "late",
        "submitted_at",
        "overridden",
    ]
    max_total = sum(m for _, m in exercises)
    rows = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".grades.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(header)
        for st in book.students():
            effective = book.effective(st["student"]) if st["submission"] is not None else {}
            points = [effective.get(e, (None, None))[0] for e, _ in exercises]
            overridden = sorted(e for e, (_, o) in effective.items() if o is not None)
            total = sum(p for p in points if p is not None)
            if st["submission"] is None:
                status = "unusable" if st["problem"] else "missing"
            else:
                status = st["status"] or ""
            late = "" if st["late"] is None else ("yes" if st["late"] else "no")
            out.writerow(
                [
                    _cell(st["student"]),
                    _cell(st["name"]),
                    _cell(st["email"]),
                    *[_points(p) for p in points],
                    _points(total),
                    _points(max_total),
                    status,
                    late,
                    st["submitted_at"] or "",
                    " ".join(overridden),
                ]
            )
            rows += 1
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, path)
    return rows


# ----------------------------------------------------------------------------- feedback


def feedback_dir(out: Path, student: str) -> Path:
    return out / "feedback" / student


def feedback_current(out: Path, student: str, stamp: str, formats: Iterable[str]) -> bool:
    """Feedback for this grading (``stamp``) is already on disk in every wanted format."""
    folder = feedback_dir(out, student)
    try:
        if (folder / STAMP).read_text(encoding="utf-8").strip() != stamp:
            return False
    except OSError:
        return False
    return all((folder / FEEDBACK_FILES[f]).is_file() for f in formats)


def write_feedback(
    out: Path,
    student: str,
    report: Mapping[str, Any],
    formats: Iterable[str],
    stamp: str,
    *,
    templates: str | os.PathLike[str] | None = None,
) -> None:
    """Render ``report`` in each format into ``feedback/<student>/``; the stamp goes last."""
    from grader.render import render_many

    folder = feedback_dir(out, student)
    formats = list(formats)
    if not formats:
        return
    for fmt, text in render_many(report, formats, templates=templates).items():
        write_atomic(folder / FEEDBACK_FILES[fmt], text)
    write_atomic(folder / STAMP, stamp + "\n")


def remove_feedback(out: Path, student: str) -> None:
    shutil.rmtree(feedback_dir(out, student), ignore_errors=True)
