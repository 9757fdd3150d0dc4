"""Progressive hints: `grade --hint losses.softmax` shows the next one and remembers which were seen.

The state lives in the kit folder (``.imgclass-hints.json``), so reports can say how many hints
a student opened (instructors may weigh that in the course config; default: no penalty).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from grader import specs
from grader.errors import UsageError

STATE_FILE = ".imgclass-hints.json"


def state_path(kit_dir: str | os.PathLike[str]) -> Path:
    return Path(kit_dir) / STATE_FILE


def used(kit_dir: str | os.PathLike[str]) -> dict[str, int]:
    """Exercise id -> number of hints opened (an unreadable file counts as none)."""
    try:
        data = json.loads(state_path(kit_dir).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if k in specs.BY_ID and type(v) is int and v >= 0}


def next_hint(name: str, kit_dir: str | os.PathLike[str]) -> tuple[str, int, int, str]:
    """Open the next hint of an exercise: (exercise id, number, total, text)."""
    chosen = specs.select([name])
    if len(chosen) != 1:
        raise UsageError(f"'{name}' names {len(chosen)} exercises: give one, e.g. losses.softmax")
    exercise = chosen[0]
    state = used(kit_dir)
    total = len(exercise.hints)
    n = min(state.get(exercise.id, 0) + 1, total)
    state[exercise.id] = n
    try:
        state_path(kit_dir).write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass  # a read-only kit still shows the hint
    return exercise.id, n, total, exercise.hints[n - 1]
