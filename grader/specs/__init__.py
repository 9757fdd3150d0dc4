"""The registry of exercises: one spec module per student module."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from grader.errors import UsageError
from grader.spec import Exercise
from grader.specs import interpretation, learning_rates, losses, presizing, regex_labels

ALL: tuple[Exercise, ...] = (
    regex_labels.EXERCISES
    + presizing.EXERCISES
    + losses.EXERCISES
    + interpretation.EXERCISES
    + learning_rates.EXERCISES
)
BY_ID: dict[str, Exercise] = {e.id: e for e in ALL}
MODULES: tuple[str, ...] = tuple(dict.fromkeys(e.module for e in ALL))


def names() -> list[str]:
    return [*MODULES, *BY_ID, *(e.func for e in ALL)]


def select(only: Iterable[str] = ()) -> tuple[Exercise, ...]:
    """Exercises named by id (``losses.softmax``), function (``softmax``) or module (``losses``)."""
    wanted = [w.strip() for w in only if w.strip()]
    if not wanted:
        return ALL
    chosen: dict[str, Exercise] = {}
    for w in wanted:
        matches = [e for e in ALL if w in (e.id, e.func, e.module)]
        if not matches:
            close = difflib.get_close_matches(w, names(), n=1)
            hint = f" — did you mean '{close[0]}'?" if close else ""
            raise UsageError(f"Unknown exercise '{w}'{hint} (see grade --list)")
        for e in matches:
            chosen[e.id] = e
    return tuple(e for e in ALL if e.id in chosen)
