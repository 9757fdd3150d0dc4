"""What travels between the batch parent and the grading processes (local or on a Dask cluster).

A task is plain JSON: the settings (once per grading process), and per submission its source
text (the units the grader runs, as read by the parent) — never pickled objects. A result is the
Report as JSON plus how long the grading took. The grading side (:func:`grade_payload`) is the
same for the local pool and for Dask.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from grader.settings import Settings
from grader.submission import Source, Submission, Unit

if TYPE_CHECKING:  # pragma: no cover
    from grader.api import Grader

#: Isolation layers a batch insists on (Linux); one of UID_LAYERS as well.
REQUIRED_LAYERS = ("rlimits", "pid-namespace", "net-namespace", "mount-allowlist", "seccomp")
UID_LAYERS = ("uid-", "no-capabilities")

#: A submission that defines nothing: starting one worker for it shows which layers are in force.
PROBE_SOURCE = "# imgclass-kit batch probe: defines nothing\n"


def missing_layers(layers: tuple[str, ...] | list[str]) -> list[str]:
    """The required isolation layers absent from ``layers`` (a Report's ``isolation``)."""
    missing = [name for name in REQUIRED_LAYERS if name not in layers]
    if not any(layer.startswith(UID_LAYERS) for layer in layers):
        missing.append("uid drop or dropped capabilities")
    return missing


# ----------------------------------------------------------------------------- settings


def settings_to_dict(s: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(s):
        value = getattr(s, f.name)
        if isinstance(value, Mapping):
            value = {k: list(v) if isinstance(v, tuple) else v for k, v in value.items()}
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def settings_from_dict(d: Mapping[str, Any]) -> Settings:
    known = {f.name for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {k: v for k, v in d.items() if k in known}
    if "exercises" in values:
        values["exercises"] = tuple(values["exercises"])
    if "forbidden" in values:
        values["forbidden"] = {k: tuple(v) for k, v in values["forbidden"].items()}
    if "points" in values:
        values["points"] = {k: float(v) for k, v in values["points"].items()}
    return Settings(**values)


# ----------------------------------------------------------------------------- submissions


def _source_to_dict(src: Source) -> dict[str, Any]:
    return {
        "key": src.key,
        "units": [{"name": u.name, "text": u.text} for u in src.units],
    }


def _source_from_dict(d: Mapping[str, Any]) -> Source:
    return Source(str(d["key"]), tuple(Unit(str(u["name"]), str(u["text"])) for u in d["units"]))


def submission_to_dict(sub: Submission) -> dict[str, Any]:
    return {
        "name": sub.name,
        "sources": {m: _source_to_dict(s) for m, s in sub.sources.items()},
        "single": _source_to_dict(sub.single) if sub.single is not None else None,
        "notes": list(sub.notes),
    }


def submission_from_dict(d: Mapping[str, Any]) -> Submission:
    single = d.get("single")
    return Submission(
        name=str(d["name"]),
        sources={str(m): _source_from_dict(s) for m, s in d.get("sources", {}).items()},
        single=_source_from_dict(single) if single is not None else None,
        notes=tuple(str(n) for n in d.get("notes", ())),
    )


def probe_submission() -> Submission:
    return Submission("batch-probe", {}, single=Source("submission", (Unit("probe.py", PROBE_SOURCE),)))


# ----------------------------------------------------------------------------- grading side


def grade_payload(grader: Grader, task: Mapping[str, Any]) -> dict[str, Any]:
    """Grade one task (``{"id", "submission", "ahead"?}``) with a ready Grader; the result is plain
    JSON data. ``ahead``: about how many more tasks this grading process will get."""
    submission = submission_from_dict(task["submission"])
    ahead = task.get("ahead")
    wall, cpu = time.perf_counter(), time.process_time()
    report = grader.grade_submission(submission, ahead=ahead if isinstance(ahead, int) else None)
    return {
        "id": task["id"],
        "report": report.to_dict(),
        "seconds": round(time.perf_counter() - wall, 4),
        "cpu_seconds": round(time.process_time() - cpu, 4),
    }


def probe_layers(grader: Grader) -> list[str]:
    """Run the probe submission: the isolation layers its worker had.

    Raises :class:`ProbeFailed` when no worker could run it at all (what the batch should say
    then is why, not which layers are missing).
    """
    report = grader.grade_submission(probe_submission())
    if report.crash:
        raise ProbeFailed(report.crash)
    if not report.isolation:
        messages = [e.message for e in report.exercises if e.message and "not implemented" not in e.message]
        if messages:
            raise ProbeFailed(f"a worker could not run an empty submission: {messages[0]}")
    return list(report.isolation)


class ProbeFailed(Exception):
    """The probe submission could not run in a worker: the sandbox itself is broken here."""
