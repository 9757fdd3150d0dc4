"""A fast in-process path for tests: run a function object through the same codec and judge.

Only for the grader's own tests and for instructors trying a spec: it runs the function IN THIS
PROCESS (no sandbox). Students' code always goes through ``grader.api``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from grader import specs
from grader.engine import Plan, RawExercise, build_plan, decode_result, judge
from grader.model import ExerciseResult
from grader.runner import call_case
from grader.settings import Settings

_PLANS: dict[tuple[str, int | None], Plan] = {}


def plan_for(exercise_id: str, settings: Settings | None = None) -> Plan:
    settings = settings or Settings()
    key = (exercise_id, settings.hidden_seed)
    if key not in _PLANS:
        _PLANS[key] = build_plan(specs.select([exercise_id]), settings)
    return _PLANS[key]


def run_exercise(
    exercise_id: str, impl: Callable[..., Any], settings: Settings | None = None
) -> ExerciseResult:
    """Grade ``impl`` as the student's function for ``exercise_id`` (in-process)."""
    settings = settings or Settings()
    pe = plan_for(exercise_id, settings).exercises[0]
    n = len(pe.cases)
    raw = RawExercise([None] * n, [set() for _ in range(n)], [0.0] * n)
    for i, case in enumerate(pe.run_cases):
        header, views = call_case(impl, case, pe.blobs, set())
        blobs = [bytes(b) for b in views]  # as they would arrive: copies, not views of the results
        raw.outcomes[i] = decode_result(header["result"], blobs)
        raw.ops[i] = set(header["ops"])
    return judge(pe, raw, settings)
