"""The result model: frozen dataclasses that every report format renders from (via ``to_dict``).

The dict form is the versioned, documented JSON schema in ``schemas/report.schema.json``.
Reports hold no timings, absolute paths or random decoration, so they can be golden-tested.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

SCHEMA_ID = "https://imgclass-kit.dev/schemas/report.schema.json"
SCHEMA_VERSION = 1


class Status(StrEnum):
    """Outcome of a case or an exercise."""

    PASSED = "passed"
    FAILED = "failed"  #: a wrong answer
    ERROR = "error"  #: the student's code raised or ended the process
    NOT_ATTEMPTED = "not_attempted"  #: still the stub (NotImplementedError) or the function is missing
    TIMEOUT = "timeout"
    FORBIDDEN = "forbidden"  #: called the PyTorch op the exercise asks to implement
    SKIPPED = "skipped"  #: not run (an earlier case ended the process, or the time budget ran out)


# When cases disagree, the exercise shows the most serious one.
_SEVERITY = [
    Status.FORBIDDEN,
    Status.TIMEOUT,
    Status.ERROR,
    Status.FAILED,
    Status.SKIPPED,
    Status.NOT_ATTEMPTED,
    Status.PASSED,
]


def worst(statuses: list[Status]) -> Status:
    """The most serious status of a list (PASSED for an empty list)."""
    for status in _SEVERITY:
        if status in statuses:
            return status
    return Status.PASSED


@dataclass(frozen=True)
class Frame:
    """One frame of the student's own traceback."""

    file: str
    line: int
    function: str
    code: str

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "function": self.function, "code": self.code}


@dataclass(frozen=True)
class Preview:
    """A small window of a value, formatted for reports.

    ``cells`` holds formatted entries of at most a few rows and columns around the first
    difference; ``marks`` is True where an entry differs from the other side; ``row_index`` and
    ``col_index`` give the positions shown (for a 1-D value, one row with ``row_index == ()``).
    """

    summary: str
    dtype: str | None = None
    shape: tuple[int, ...] | None = None
    cells: tuple[tuple[str, ...], ...] = ()
    marks: tuple[tuple[bool, ...], ...] = ()
    row_index: tuple[int, ...] = ()
    col_index: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "dtype": self.dtype,
            "shape": list(self.shape) if self.shape is not None else None,
            "cells": [list(r) for r in self.cells],
            "marks": [list(r) for r in self.marks],
            "row_index": list(self.row_index),
            "col_index": list(self.col_index),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Preview:
        return cls(
            summary=d["summary"],
            dtype=d.get("dtype"),
            shape=tuple(d["shape"]) if d.get("shape") is not None else None,
            cells=tuple(tuple(r) for r in d.get("cells", ())),
            marks=tuple(tuple(r) for r in d.get("marks", ())),
            row_index=tuple(d.get("row_index", ())),
            col_index=tuple(d.get("col_index", ())),
        )


@dataclass(frozen=True)
class Misconception:
    """A known wrong idea, recognised from the output it produces."""

    name: str  #: stable short name, e.g. ``softmax-no-max-subtraction``
    title: str  #: one line
    explanation: str  #: two lines at most: why the output looks like this
    hint: str  #: what to think about, not the answer

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "explanation": self.explanation, "hint": self.hint}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Misconception:
        return cls(name=d["name"], title=d["title"], explanation=d["explanation"], hint=d["hint"])


@dataclass(frozen=True)
class Figure:
    """Data for a picture in rich reports (HTML): images as PNG data URIs, or small series to plot."""

    kind: str  #: ``images`` (``images`` + ``metrics``) or ``rows`` (``series`` to plot per row)
    title: str
    caption: str = ""
    images: tuple[tuple[str, str], ...] = ()  #: (label, ``data:image/png;base64,...``)
    metrics: tuple[tuple[str, float], ...] = ()  #: (label, value), e.g. PSNR in dB
    series: tuple[tuple[str, tuple[tuple[float, ...], ...]], ...] = ()  #: (name, rows of values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "caption": self.caption,
            "images": [{"label": label, "src": src} for label, src in self.images],
            "metrics": [{"label": label, "value": value} for label, value in self.metrics],
            "series": [{"name": name, "rows": [list(r) for r in rows]} for name, rows in self.series],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Figure:
        return cls(
            kind=d["kind"],
            title=d["title"],
            caption=d.get("caption", ""),
            images=tuple((i["label"], i["src"]) for i in d.get("images", ())),
            metrics=tuple((m["label"], m["value"]) for m in d.get("metrics", ())),
            series=tuple((s["name"], tuple(tuple(r) for r in s["rows"])) for s in d.get("series", ())),
        )


@dataclass(frozen=True)
class CaseResult:
    """The outcome of one generated input (a case) of one exercise."""

    id: str
    label: str
    status: Status
    message: str = ""  #: summary line of the problem ("" when passed)
    details: tuple[str, ...] = ()  #: further lines: shapes, largest difference, ...
    misconception: str | None = None
    call: str = ""  #: a call to paste into Python to reproduce the case ("" for hidden cases)
    hidden: bool = False
    weight: float = 1.0
    expected: Preview | None = None
    got: Preview | None = None
    traceback: tuple[Frame, ...] = ()

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "status": self.status.value,
            "message": self.message,
            "details": list(self.details),
            "misconception": self.misconception,
            "call": self.call,
            "hidden": self.hidden,
            "weight": self.weight,
            "expected": self.expected.to_dict() if self.expected else None,
            "got": self.got.to_dict() if self.got else None,
            "traceback": [f.to_dict() for f in self.traceback],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CaseResult:
        return cls(
            id=d["id"],
            label=d["label"],
            status=Status(d["status"]),
            message=d.get("message", ""),
            details=tuple(d.get("details", ())),
            misconception=d.get("misconception"),
            call=d.get("call", ""),
            hidden=d.get("hidden", False),
            weight=d.get("weight", 1.0),
            expected=Preview.from_dict(d["expected"]) if d.get("expected") else None,
            got=Preview.from_dict(d["got"]) if d.get("got") else None,
            traceback=tuple(Frame(**f) for f in d.get("traceback", ())),
        )


@dataclass(frozen=True)
class ExerciseResult:
    """The outcome of one exercise (one student function)."""

    id: str  #: ``module.function``, e.g. ``losses.softmax``
    title: str
    status: Status
    score: float
    max_score: float
    message: str = ""  #: the first problem, one line ("" when passed)
    cases: tuple[CaseResult, ...] = ()
    misconceptions: tuple[Misconception, ...] = ()  #: the ones recognised, in order of first appearance
    hint: str = ""  #: shown with a failure: the exercise's first hint
    figures: tuple[Figure, ...] = ()
    notes: tuple[str, ...] = ()  #: extra lines for the student (e.g. what presizing saved)

    @property
    def misconception(self) -> str | None:
        return self.misconceptions[0].name if self.misconceptions else None

    def to_dict(self) -> dict[str, Any]:
        passed = sum(1 for c in self.cases if c.passed)
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status.value,
            "score": round(self.score, 4),
            "max_score": self.max_score,
            "message": self.message,
            "passed_cases": passed,
            "total_cases": len(self.cases),
            "misconception": self.misconception,
            "misconceptions": [m.to_dict() for m in self.misconceptions],
            "hint": self.hint,
            "notes": list(self.notes),
            "figures": [f.to_dict() for f in self.figures],
            "cases": [c.to_dict() for c in self.cases],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ExerciseResult:
        return cls(
            id=d["id"],
            title=d["title"],
            status=Status(d["status"]),
            score=d["score"],
            max_score=d["max_score"],
            message=d.get("message", ""),
            cases=tuple(CaseResult.from_dict(c) for c in d.get("cases", ())),
            misconceptions=tuple(Misconception.from_dict(m) for m in d.get("misconceptions", ())),
            hint=d.get("hint", ""),
            figures=tuple(Figure.from_dict(f) for f in d.get("figures", ())),
            notes=tuple(d.get("notes", ())),
        )


@dataclass(frozen=True)
class Output:
    """What the student's code printed (stdout and stderr together), capped."""

    text: str = ""
    total_bytes: int = 0
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "total_bytes": self.total_bytes, "truncated": self.truncated}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Output:
        return cls(
            text=d.get("text", ""), total_bytes=d.get("total_bytes", 0), truncated=d.get("truncated", False)
        )


@dataclass(frozen=True)
class Report:
    """Everything known about one graded submission."""

    submission: str  #: display name (no absolute path)
    exercises: tuple[ExerciseResult, ...]
    grader_version: str
    seed: int  #: the public seed the cases came from
    hidden: bool = False  #: whether hidden cases (from an instructor's seed) were graded
    warnings: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()  #: input errors (syntax errors, import errors): exit code 2
    crash: str | None = None  #: set when the grader itself failed on this submission
    isolation: tuple[str, ...] = ()  #: protections that were in force while the student's code ran
    output: Output = field(default_factory=Output)
    hints_used: tuple[tuple[str, int], ...] = ()

    @property
    def score(self) -> float:
        return round(sum(e.score for e in self.exercises), 4)

    @property
    def max_score(self) -> float:
        return round(sum(e.max_score for e in self.exercises), 4)

    @property
    def all_passed(self) -> bool:
        return bool(self.exercises) and all(e.status is Status.PASSED for e in self.exercises)

    def exercise(self, exercise_id: str) -> ExerciseResult:
        for e in self.exercises:
            if e.id == exercise_id:
                return e
        raise KeyError(exercise_id)

    def with_crash(self, message: str) -> Report:
        return replace(self, crash=message)

    def to_dict(self) -> dict[str, Any]:
        counts = {s.value: 0 for s in Status}
        for e in self.exercises:
            counts[e.status.value] += 1
        return {
            "$schema": SCHEMA_ID,
            "schema_version": SCHEMA_VERSION,
            "grader_version": self.grader_version,
            "submission": self.submission,
            "seed": self.seed,
            "hidden": self.hidden,
            "score": self.score,
            "max_score": self.max_score,
            "status_counts": counts,
            "exercises": [e.to_dict() for e in self.exercises],
            "warnings": list(self.warnings),
            "errors": list(self.errors),
            "crash": self.crash,
            "isolation": list(self.isolation),
            "output": self.output.to_dict(),
            "hints_used": {k: v for k, v in self.hints_used},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Report:
        return cls(
            submission=d["submission"],
            exercises=tuple(ExerciseResult.from_dict(e) for e in d["exercises"]),
            grader_version=d["grader_version"],
            seed=d["seed"],
            hidden=d.get("hidden", False),
            warnings=tuple(d.get("warnings", ())),
            errors=tuple(d.get("errors", ())),
            crash=d.get("crash"),
            isolation=tuple(d.get("isolation", ())),
            output=Output.from_dict(d.get("output", {})),
            hints_used=tuple(sorted(d.get("hints_used", {}).items())),
        )
