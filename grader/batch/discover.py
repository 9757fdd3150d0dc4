"""Find the submissions in a folder, in the layouts instructors have.

* **nbgrader**: ``[course/]submitted/<student>/<assignment>/`` holding the student's notebook (and
  nbgrader's ``timestamp.txt``, which gives the hand-in time).
* **Gradescope** "Export Submissions": ``submission_metadata.yml`` beside one
  ``submission_<id>/`` folder per submission (the metadata names the student and the time).
* **A folder per student**: ``<student>/`` holding ``exercises/``, the exercise modules, one ``.py``
  or one ``.ipynb``.
* **Flat**: ``<student>.py`` or ``<student>.ipynb``.

The last two may be mixed in one folder. Discovery only looks at names and folders; reading a
submission (and the reasons it can fail: two candidate notebooks, unreadable file, ...) is
:func:`grader.submission.read_submission`'s job. Whatever cannot be used becomes an
:class:`Unusable` with the reason, and the batch goes on.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from grader.errors import UsageError

NBGRADER = "nbgrader"
GRADESCOPE = "gradescope"
FOLDER = "folder"
FLAT = "flat"

GRADESCOPE_METADATA = "submission_metadata.yml"
SUFFIXES = (".py", ".ipynb")
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")


@dataclass(frozen=True)
class Candidate:
    """One student's submission, found but not read yet."""

    student: str  #: the id used in the gradebook, grades.csv and ``feedback/<student>/``
    path: Path  #: what :func:`grader.submission.read_submission` gets (a folder or a file)
    layout: str  #: ``nbgrader``, ``gradescope``, ``folder`` or ``flat``
    name: str = ""  #: the student's name, where the layout gives it
    email: str = ""
    submitted_at: datetime | None = None  #: when it was handed in (UTC), where the layout says


@dataclass(frozen=True)
class Unusable:
    """Something in the submissions folder the batch cannot grade, and why."""

    path: Path
    reason: str
    student: str | None = None


Found = Candidate | Unusable


def student_id(raw: str) -> str:
    """A file-system- and CSV-safe student id: ``Ana María`` -> ``Ana_Mar_a``, never ``..``."""
    s = _UNSAFE.sub("_", raw.strip()).strip("._") or "student"
    return s[:100]


def _visible(p: Path) -> bool:
    return not p.name.startswith((".", "__")) and p.name not in ("__pycache__",)


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted((p for p in folder.iterdir() if _visible(p)), key=lambda p: p.name)
    except OSError as e:
        raise UsageError(f"Cannot list {folder}: {e.strerror or e}") from None


def _has_files(folder: Path) -> bool:
    """Any visible file below ``folder`` (so an empty folder can be named as such)."""
    for _dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith((".", "__"))]
        if any(not f.startswith(".") for f in filenames):
            return True
    return False


# ----------------------------------------------------------------------------- times


def parse_time(text: str) -> datetime | None:
    """A hand-in time as UTC: nbgrader's ``2026-11-28 14:03:12.123456 UTC``, ISO 8601, Gradescope's
    ``2026-11-28 14:03:12.123456789 -0800``. None when it cannot be read."""
    s = text.strip()
    if not s:
        return None
    parts = s.split()
    tz: timezone | Any = None
    if len(parts) == 3:
        s, zone = f"{parts[0]} {parts[1]}", parts[2]
        if zone.upper() in ("UTC", "GMT", "Z"):
            tz = UTC
        elif re.fullmatch(r"[+-]\d{2}:?\d{2}", zone):
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
        else:
            try:
                from zoneinfo import ZoneInfo

                tz = ZoneInfo(zone)
            except Exception:
                return None
    # Python's parser takes at most 6 fractional digits (Gradescope writes 9)
    s = re.sub(r"(\.\d{6})\d+", r"\1", s)
    try:
        when = datetime.fromisoformat(s)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz or UTC)
    return when.astimezone(UTC)


def as_utc(value: Any) -> datetime | None:
    """A TOML/YAML datetime or date string -> an aware UTC datetime (naive means UTC)."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    if isinstance(value, str):
        return parse_time(value)
    return None


# ----------------------------------------------------------------------------- layouts


def _nbgrader_root(root: Path) -> Path | None:
    if (root / "submitted").is_dir():
        return root / "submitted"
    if root.name == "submitted":
        # every student folder holds assignment folders only (no code of its own)
        students = [p for p in _entries(root) if p.is_dir()]
        if students and all(
            not (s / "exercises").is_dir()
            and not any(f.suffix in SUFFIXES for f in _entries(s) if f.is_file())
            for s in students
        ):
            return root
    return None


def _nbgrader(submitted: Path, assignment: str | None) -> Iterator[Found]:
    students = [p for p in _entries(submitted) if p.is_dir()]
    names = sorted({a.name for s in students for a in _entries(s) if a.is_dir()})
    if assignment is None:
        if len(names) > 1:
            raise UsageError(
                f"{submitted} holds several nbgrader assignments ({', '.join(names[:6])}): "
                "choose one with --assignment"
            )
        if not names:
            raise UsageError(
                f"No assignment folders in {submitted} (expected submitted/<student>/<assignment>/)"
            )
        assignment = names[0]
    for s in students:
        folder = s / assignment
        sid = student_id(s.name)
        if not folder.is_dir():
            yield Unusable(s, f"no {assignment}/ folder (nothing handed in for this assignment)", sid)
            continue
        when = None
        stamp = folder / "timestamp.txt"
        if stamp.is_file():
            with contextlib.suppress(OSError, UnicodeDecodeError):
                when = parse_time(stamp.read_text(encoding="utf-8"))
        notebooks = [f for f in _entries(folder) if f.is_file() and f.suffix == ".ipynb"]
        if len(notebooks) == 1:
            yield Candidate(sid, notebooks[0], NBGRADER, submitted_at=when)
        elif len(notebooks) > 1:
            names_nb = ", ".join(f.name for f in notebooks[:4])
            yield Unusable(folder, f"two or more candidate notebooks ({names_nb})", sid)
        elif not _has_files(folder):
            yield Unusable(folder, "empty folder", sid)
        else:
            yield Candidate(sid, folder, NBGRADER, submitted_at=when)


def _load_yaml(text: str) -> Any:
    try:
        import yaml
    except ImportError:  # PyYAML comes with the dask extra; a small fallback for the rest
        return _mini_yaml(text)
    return yaml.safe_load(text)


def _mini_yaml(text: str) -> dict[str, Any]:
    """Just enough of Gradescope's metadata without PyYAML: submission keys, submitters, created_at."""
    out: dict[str, Any] = {}
    current: dict[str, Any] | None = None
    person: dict[str, str] | None = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        body = line.strip()
        if indent == 0 and body.endswith(":"):
            current = out.setdefault(body[:-1].strip("'\""), {":submitters": []})
            person = None
            continue
        if current is None:
            continue
        if body.startswith("- "):
            person = {}
            current[":submitters"].append(person)
            body = body[2:]
        key, _, value = body.partition(": ")
        value = value.strip().strip("'\"")
        if key in (":name", ":sid", ":email") and person is not None:
            person[key] = value
        elif key == ":created_at" and indent <= 2:
            current[":created_at"] = value
    return out


def _gradescope(root: Path) -> Iterator[Found]:
    meta_path = root / GRADESCOPE_METADATA
    try:
        meta = _load_yaml(meta_path.read_text(encoding="utf-8")) or {}
    except Exception as e:
        raise UsageError(f"Cannot read {meta_path}: {e}") from None
    if not isinstance(meta, dict):
        raise UsageError(f"{meta_path} is not a mapping of submission folders")
    seen: set[str] = set()
    for key in sorted(meta, key=str):
        record = meta[key] if isinstance(meta[key], dict) else {}
        folder = root / str(key)
        seen.add(str(key))
        submitters = [p for p in record.get(":submitters") or [] if isinstance(p, dict)]
        when = as_utc(record.get(":created_at"))
        if not submitters:
            submitters = [{}]
        for person in submitters:
            raw = str(person.get(":sid") or person.get(":email") or person.get(":name") or key)
            sid = student_id(raw)
            name, email = str(person.get(":name") or ""), str(person.get(":email") or "")
            if not folder.is_dir():
                yield Unusable(folder, "listed in submission_metadata.yml but the folder is missing", sid)
            elif not _has_files(folder):
                yield Unusable(folder, "empty folder", sid)
            else:
                yield Candidate(sid, folder, GRADESCOPE, name=name, email=email, submitted_at=when)
    for p in _entries(root):
        if p.is_dir() and p.name not in seen:
            yield Unusable(p, "not listed in submission_metadata.yml")


def _folders_and_files(root: Path, exclude: Path | None) -> Iterator[Found]:
    for p in _entries(root):
        if exclude is not None and p.resolve() == exclude:
            continue
        if p.is_dir():
            if not _has_files(p):
                yield Unusable(p, "empty folder", student_id(p.name))
            else:
                yield Candidate(student_id(p.name), p, FOLDER)
        elif p.is_file():
            if p.suffix in SUFFIXES:
                yield Candidate(student_id(p.stem), p, FLAT)
            else:
                yield Unusable(p, "not a submission (expected <student>.py, <student>.ipynb or a folder)")
        else:
            yield Unusable(p, "not a regular file or folder")


def layout_of(root: Path) -> str:
    """Which layout ``root`` looks like (``folder`` covers flat files too)."""
    if (root / GRADESCOPE_METADATA).is_file():
        return GRADESCOPE
    if _nbgrader_root(root) is not None:
        return NBGRADER
    return FOLDER


def discover(
    root: str | os.PathLike[str],
    *,
    assignment: str | None = None,
    exclude: str | os.PathLike[str] | None = None,
) -> Iterator[Found]:
    """Yield every submission (or unusable entry) under ``root``, sorted by student.

    A student id found twice (``ana.py`` beside ``ana/``) is ambiguous: every entry for it becomes
    :class:`Unusable`. ``exclude`` is skipped (the batch's own output folder, if it lies inside).
    """
    base = Path(root)
    if not base.exists():
        raise UsageError(f"No such folder: {base}")
    if not base.is_dir():
        raise UsageError(f"{base} is not a folder of submissions")
    skip = Path(exclude).resolve() if exclude is not None else None
    layout = layout_of(base)
    if layout == GRADESCOPE:
        found = list(_gradescope(base))
    elif layout == NBGRADER:
        submitted = _nbgrader_root(base)
        assert submitted is not None
        found = list(_nbgrader(submitted, assignment))
    else:
        found = list(_folders_and_files(base, skip))
    by_student: dict[str, list[Found]] = {}
    for f in found:
        key = f.student if f.student is not None else f"\0{f.path}"
        by_student.setdefault(key, []).append(f)
    for key in sorted(by_student):
        group = by_student[key]
        candidates = [f for f in group if isinstance(f, Candidate)]
        if len(candidates) > 1:
            paths = ", ".join(c.path.name for c in candidates[:4])
            for c in candidates:
                yield Unusable(
                    c.path, f"student '{c.student}' has two or more submissions ({paths})", c.student
                )
            yield from (f for f in group if isinstance(f, Unusable))
        else:
            yield from group
