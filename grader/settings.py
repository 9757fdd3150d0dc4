"""One settings object: the CLI's defaults come from here, so the CLI and the Python API cannot drift.

Instructors keep course settings in a TOML file (``course.toml``, or ``[tool.imgclass-kit]`` in a
``pyproject.toml``)::

    [grading]
    hidden_seed = 123456789        # or IMGCLASS_HIDDEN_SEED in the environment
    exercises = ["losses.softmax", "losses.cross_entropy"]   # this assignment (default: all)
    timeout = 10                   # seconds per exercise
    submission_timeout = 120
    hint_penalty = 0.0             # points off per hint a student opened

    [points]
    "losses.cross_entropy" = 4

    [forbidden]                    # extra aten ops forbidden per exercise
    "losses.softmax" = ["exp"]
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from grader.errors import UsageError
from grader.seeds import PUBLIC_SEED

HIDDEN_SEED_ENV = "IMGCLASS_HIDDEN_SEED"


@dataclass(frozen=True)
class Settings:
    """How a submission is graded."""

    timeout: float = 10.0
    """Wall-clock seconds for all the cases of one exercise."""
    import_timeout: float = 20.0
    """Wall-clock seconds for running a student module's top-level code."""
    submission_timeout: float = 120.0
    """Wall-clock budget for a whole submission; exercises after it runs out get TIMEOUT."""
    output_limit: int = 64 * 1024
    """Bytes of the student's printed output kept in the report (the rest is counted)."""
    seed: int = PUBLIC_SEED
    """The public seed: every student sees the same cases."""
    hidden_seed: int | None = None
    """An instructor's secret seed: adds hidden cases. Never reaches a worker process."""
    exercises: tuple[str, ...] = ()
    """Exercise ids (or modules/functions) in this assignment; empty means all."""
    points: Mapping[str, float] = field(default_factory=dict)
    """Points per exercise id, overriding the kit's defaults."""
    forbidden: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Extra aten op names forbidden per exercise id."""
    hint_penalty: float = 0.0
    """Points taken off per hint a student opened (never below 0 for an exercise)."""
    figures: bool = True
    """Compute figures for reports (the presizing exercise's PSNR against the exact picture)."""
    pictures: bool = False
    """Also embed pictures in those figures (PNG images; for HTML reports)."""
    cpu_seconds: int = 120
    """CPU-seconds limit of one worker process."""
    memory_bytes: int = 2 << 30
    """Address space a worker may add on top of what it inherits."""
    file_size_bytes: int = 16 << 20
    """Largest file a worker may write."""
    isolation: str = "auto"
    """auto: every layer this machine supports; minimal: process, limits and timeouts only (no
    namespaces, uid change, seccomp or kernel probes)."""

    def with_overrides(self, **kwargs: Any) -> Settings:
        return replace(self, **{k: v for k, v in kwargs.items() if v is not None})

    def policy(self) -> dict[str, Any]:
        """The worker's isolation policy, as sent to the fork-server."""
        return {
            "isolate": self.isolation != "minimal",
            "limits": {
                "cpu_seconds": self.cpu_seconds,
                "memory_bytes": self.memory_bytes,
                "file_size_bytes": self.file_size_bytes,
                "open_files": 256,
            },
        }

    def fingerprint(self) -> str:
        """What changes grades (for batch re-run decisions); the hidden seed only as a hash."""
        import hashlib
        import json

        data = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("figures", "pictures", "output_limit")
        }
        data["hidden_seed"] = (
            hashlib.sha256(str(self.hidden_seed).encode()).hexdigest()
            if self.hidden_seed is not None
            else None
        )
        data["points"] = dict(sorted(self.points.items()))
        data["forbidden"] = {k: list(v) for k, v in sorted(self.forbidden.items())}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _int(value: Any, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{what} must be an integer, got {value!r}") from None


def load_course(path: str | os.PathLike[str] | None, base: Settings | None = None) -> Settings:
    """Settings from a course TOML file (and ``IMGCLASS_HIDDEN_SEED``), on top of ``base``."""
    s = base or Settings()
    env_seed = os.environ.get(HIDDEN_SEED_ENV)
    if env_seed:
        s = replace(s, hidden_seed=_int(env_seed, HIDDEN_SEED_ENV))
    if path is None:
        return s
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"No such course config: {p}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"Cannot read course config {p}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{p} is not valid TOML: {e}") from None
    if p.name == "pyproject.toml":
        raw = raw.get("tool", {}).get("imgclass-kit", {})
    grading = raw.get("grading", {})
    known = {f.name for f in fields(Settings)}
    unknown = set(grading) - known
    if unknown:
        raise UsageError(f"{p}: unknown [grading] setting(s): {', '.join(sorted(unknown))}")
    updates: dict[str, Any] = {}
    for key, value in grading.items():
        if key == "hidden_seed":
            updates[key] = _int(value, "hidden_seed")
        elif key == "exercises":
            updates[key] = tuple(str(v) for v in value)
        else:
            updates[key] = value
    if "points" in raw:
        updates["points"] = {str(k): float(v) for k, v in raw["points"].items()}
    if "forbidden" in raw:
        updates["forbidden"] = {str(k): tuple(str(x) for x in v) for k, v in raw["forbidden"].items()}
    if env_seed and "hidden_seed" not in grading:
        updates["hidden_seed"] = _int(env_seed, HIDDEN_SEED_ENV)
    return replace(s, **updates)
