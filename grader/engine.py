"""Plan → run → judge: build the cases and PyTorch's expected outputs once, run a submission in a
worker, and turn what came back into an explained, scored Report. All judging happens here, in the
trusted parent.
"""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from grader import probes, static, wire
from grader.explain import outcomes_agree
from grader.model import (
    CaseResult,
    ExerciseResult,
    Figure,
    Frame,
    Misconception,
    Output,
    Report,
    Status,
    worst,
)
from grader.outcome import NotImplementedYet, Outcome, Raised, Returned
from grader.sandbox import OutputCapture, SandboxError, Worker, WorkerGone, WorkerTimeout
from grader.seeds import case_seed
from grader.settings import Settings
from grader.spec import Call, CaseSpec, Exercise, Failure, Tolerance
from grader.submission import Source, Submission
from grader.version import __version__

# ----------------------------------------------------------------------------- plan


def evaluate(fn: Callable[..., Any], c: Call, with_grad: bool = False) -> Outcome:
    """Run a trusted function (the reference or a misconception's variant) on fresh copies of the args."""

    def fresh(v: Any) -> Any:
        return v.detach().clone() if isinstance(v, torch.Tensor) else v

    args = [fresh(a.value) for a in c.args]
    kwargs = {k: fresh(a.value) for k, a in c.kwargs}
    leaf = None
    if with_grad and c.grad_wrt is not None:
        leaf = args[c.grad_wrt].requires_grad_(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = fn(*args, **kwargs)
            grad = None
            if leaf is not None:
                # (value * g).sum().backward() == value.backward(g), without torch importing sympy
                weighted = value * c.grad_output.value if c.grad_output is not None else value
                weighted.sum().backward()
                grad = leaf.grad.detach() if leaf.grad is not None else None
    except Exception as e:
        return Raised(type(e).__name__, tuple(k.__name__ for k in type(e).__mro__), str(e))
    if isinstance(value, torch.Tensor):
        value = value.detach()
    return Returned(value, grad=grad)


@dataclass
class PlannedCase:
    spec: CaseSpec
    id: str
    label: str
    hidden: bool
    seed: int
    call: Call
    expected: Outcome
    tol: Tolerance
    recipe: str
    #: values derived from this case alone (not from a submission), kept for the next submission
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass
class PlannedExercise:
    exercise: Exercise
    cases: list[PlannedCase]
    points: float
    forbidden: dict[str, str]
    run_cases: list[dict[str, Any]] = field(default_factory=list)
    blobs: list[bytes] = field(default_factory=list)
    _variants: dict[tuple[int, int], Outcome] = field(default_factory=dict)

    def variant(self, d: int, i: int) -> Outcome:
        key = (d, i)
        if key not in self._variants:
            fn = self.exercise.diagnoses[d].variant
            assert fn is not None
            self._variants[key] = evaluate(fn, self.cases[i].call)
        return self._variants[key]


class Plan:
    """Cases and expected outputs, built per exercise on first use and then shared by every submission."""

    def __init__(self, exercises: Sequence[Exercise], settings: Settings) -> None:
        self.specs = tuple(exercises)
        self.settings = settings
        self.seed = settings.seed
        self.hidden = settings.hidden_seed is not None
        self._built: list[PlannedExercise | None] = [None] * len(self.specs)
        self._lock = threading.Lock()
        #: set when the fork-server holds this plan's inputs (grader.api.Grader.preload)
        self.preloaded: str | None = None

    def __len__(self) -> int:
        return len(self.specs)

    def __getitem__(self, i: int) -> PlannedExercise:
        built = self._built[i]
        if built is None:
            with self._lock:
                built = self._built[i]
                if built is None:
                    built = self._built[i] = _plan_exercise(self.specs[i], self.settings)
        return built

    @property
    def exercises(self) -> list[PlannedExercise]:
        return [self[i] for i in range(len(self))]

    @property
    def max_score(self) -> float:
        return sum(float(self.settings.points.get(e.id, e.points)) for e in self.specs)


def _plan_case(ex: Exercise, spec: CaseSpec, seed: int, hidden: bool) -> PlannedCase:
    cid = f"hidden-{spec.id}" if hidden else spec.id
    s = case_seed(seed, ex.id, spec.id)
    c = spec.build(s)
    reference = evaluate(ex.reference, c, with_grad=c.grad_wrt is not None)
    if spec.expected is not None:
        value = spec.expected(c)
        if isinstance(reference, Returned) and isinstance(reference.value, torch.Tensor):
            value = value.to(reference.value.dtype)
        expected: Outcome = Returned(value)
        tol = Tolerance(rtol=0.0, atol=spec.atol or 1e-3)
    else:
        expected = reference
        tol = ex.tolerance(c, reference.value if isinstance(reference, Returned) else None)
    return PlannedCase(
        spec=spec,
        id=cid,
        label=("hidden: " + spec.label) if hidden else spec.label,
        hidden=hidden,
        seed=s,
        call=c,
        expected=expected,
        tol=tol,
        recipe="" if hidden else c.recipe(ex.func),
    )


def _plan_exercise(ex: Exercise, settings: Settings) -> PlannedExercise:
    cases = [_plan_case(ex, spec, settings.seed, hidden=False) for spec in ex.cases]
    if settings.hidden_seed is not None:
        cases += [_plan_case(ex, spec, settings.hidden_seed, hidden=True) for spec in ex.cases if spec.random]
    forbidden = dict(ex.forbidden)
    for op in settings.forbidden.get(ex.id, ()):
        forbidden[op] = f"torch op '{op}' (forbidden by your course)"
    pe = PlannedExercise(ex, cases, float(settings.points.get(ex.id, ex.points)), forbidden)
    for pc in cases:
        pe.run_cases.append(
            {
                "id": pc.id,
                "args": [wire.encode_arg(a.value, pe.blobs) for a in pc.call.args],
                "kwargs": {k: wire.encode_arg(a.value, pe.blobs) for k, a in pc.call.kwargs},
                "grad_wrt": pc.call.grad_wrt,
                "grad_output": (
                    wire.encode_value(pc.call.grad_output.value, pe.blobs) if pc.call.grad_output else None
                ),
            }
        )
    return pe


def build_plan(
    exercises: Sequence[Exercise], settings: Settings | None = None, *, lazy: bool = False
) -> Plan:
    """Cases and expected outputs for every exercise: computed once, shared by every submission.

    ``lazy`` builds each exercise on first use, so a single submission's grading can overlap
    building the next exercise with the worker running the current one.
    """
    plan = Plan(exercises, settings or Settings())
    if not lazy:
        plan.exercises  # noqa: B018 - build everything now
    return plan


# ----------------------------------------------------------------------------- run


@dataclass
class RawExercise:
    """What running one exercise produced, before judging."""

    outcomes: list[Outcome | None]
    ops: list[set[str]]
    seconds: list[float]
    missing: str | None = None  #: why the function could not be found
    problem: str | None = None  #: a failure of the whole exercise (import error, timeout, crash)
    problem_status: Status | None = None
    frames: tuple[Frame, ...] = ()
    untraced: dict[int, str] = field(default_factory=dict)  #: case index -> why its op trace is void
    #: probed ops the kernel counted while this exercise ran (or while its module was imported)
    kernel: dict[str, int] = field(default_factory=dict)


def _frames(raw: Any) -> tuple[Frame, ...]:
    out = []
    for f in raw if isinstance(raw, list) else []:
        if isinstance(f, list) and len(f) == 4:
            out.append(
                Frame(
                    str(f[0])[:200],
                    int(f[1]) if isinstance(f[1], int) else 0,
                    str(f[2])[:100],
                    str(f[3])[:300],
                )
            )
    return tuple(out)


def decode_result(result: Any, blobs: list[bytes]) -> Outcome:
    """A worker's result for one case -> an Outcome (strict: anything malformed raises ProtocolError)."""
    if not isinstance(result, dict):
        raise wire.ProtocolError("result is not an object")
    kind = result.get("kind")
    if kind == "not_implemented":
        return NotImplementedYet()
    if kind == "raised":
        kinds = result.get("kinds")
        kinds_t = tuple(str(k)[:100] for k in kinds[:20]) if isinstance(kinds, list) else ()
        return Raised(
            str(result.get("type", "?"))[:100],
            kinds_t,
            str(result.get("message", ""))[:2000],
            _frames(result.get("frames")),
        )
    if kind == "returned":
        value = wire.decode_value(result.get("value"), blobs, owned=True)
        grad = (
            wire.decode_value(result["grad"], blobs, owned=True) if result.get("grad") is not None else None
        )
        grad_error = result.get("grad_error")
        mutated = result.get("mutated") or []
        if not isinstance(mutated, list) or not all(type(i) is int for i in mutated):
            raise wire.ProtocolError("malformed mutation list")
        return Returned(
            value, grad, str(grad_error)[:300] if grad_error is not None else None, tuple(mutated[:16])
        )
    raise wire.ProtocolError("unknown result kind")


WorkerFactory = Callable[[OutputCapture], Worker]


@dataclass
class Execution:
    raw: dict[str, RawExercise]
    output: OutputCapture
    layers: tuple[str, ...]
    errors: list[str]
    seconds: float


def execute(
    submission: Submission,
    plan: Plan,
    new_worker: WorkerFactory,
    settings: Settings,
    on_exercise: Callable[[PlannedExercise, RawExercise], None] | None = None,
    retire: Callable[[Worker], None] | None = None,
) -> Execution:
    """Run every planned exercise of ``submission`` in workers; respawn after a crash or timeout.

    While the worker runs an exercise, the parent builds the next exercise's plan and hands the
    previous exercise to ``on_exercise`` (the judge), so both processes work at once. The last
    worker is asked to exit before the last judging; with ``retire`` it is handed over still
    exiting (whoever starts the next worker must wait for it first: see ``api.Grader``),
    otherwise it is waited for here.
    """
    start = time.monotonic()
    output = OutputCapture(settings.output_limit)
    budget_end = start + settings.submission_timeout
    worker: Worker | None = None
    layers: tuple[str, ...] = ()
    loaded: set[str] = set()
    broken: dict[str, tuple[Status, str, tuple[Frame, ...]]] = {}
    errors: list[str] = []
    # The ops whose calls are checked: the worker learns their op objects before any student code runs.
    watch = sorted(
        {op for ex in plan.specs for op in ex.forbidden}
        | {op for ops in settings.forbidden.values() for op in ops}
    )
    results: dict[str, RawExercise] = {}
    # Kernel probes (grader.probes): hits of the forbidden ops' CPU kernels, counted outside the
    # worker. Windows are contiguous: every hit lands in the import or the exercise it ran during.
    probe: Callable[[], dict[str, int]] | None = None
    probed: frozenset[str] = frozenset()  # the ops the kernel probes count, when their layer holds
    mark: dict[str, int] = {}
    imported_hits: dict[str, dict[str, int]] = {}

    def hits_since_mark() -> dict[str, int]:
        nonlocal mark
        if probe is None:
            return {}
        now = probe()
        found, mark = probes.diff(mark, now), now
        return found

    def add_hits(into: dict[str, int], found: dict[str, int]) -> None:
        for op, n in found.items():
            into[op] = into.get(op, 0) + n

    def drop_worker(kill: bool) -> None:
        nonlocal worker
        if worker is not None:
            if kill:
                worker.kill()
            else:  # ask it to exit and reap it: a worker merely forgotten is never collected
                with contextlib.suppress(Exception):
                    worker.finish()
            worker = None
        loaded.clear()

    pending: list[tuple[PlannedExercise, RawExercise]] = []
    internal: list[BaseException] = []

    def overlap(next_index: int, running: PlannedExercise | None = None) -> None:
        """Parent work done while the worker computes: plan the next exercise, judge finished ones."""
        try:
            if next_index < len(plan):
                plan[next_index]
            while pending and pending[0][0] is not running and on_exercise is not None:
                on_exercise(*pending.pop(0))
        except Exception as e:  # the grader's own failure, never the student's
            internal.append(e)

    for index in range(len(plan)):
        pe = plan[index]
        ex = pe.exercise
        n = len(pe.cases)
        raw = RawExercise([None] * n, [set() for _ in range(n)], [0.0] * n)
        results[ex.id] = raw
        pending.append((pe, raw))
        src: Source | None = submission.source_for(ex.module)
        if src is None:
            raw.missing = f"no {ex.module}.py in the submission"
            continue
        if src.syntax_error:
            raw.problem_status, raw.problem = Status.ERROR, src.syntax_error
            continue
        if src.key in broken:
            raw.problem_status, raw.problem, raw.frames = broken[src.key]
            continue
        if time.monotonic() >= budget_end:
            raw.problem_status = Status.TIMEOUT
            raw.problem = f"not run: the submission's time budget ({settings.submission_timeout:g} s) ran out"
            continue
        phase = "start"
        done = 0
        try:
            if worker is None:
                worker = new_worker(output)
                hello, _ = worker.recv(time.monotonic() + 60)
                if hello.get("op") == "setup-failed":
                    raise SandboxError(f"the worker could not be set up: {hello.get('error')}")
                if hello.get("op") != "hello":
                    raise wire.ProtocolError("the worker did not say hello")
                layers = tuple(str(x) for x in hello.get("layers", []))[:20]
                probe = worker.probe
                if probe is not None:
                    mark = probe()
                    if "mount-allowlist" in layers:  # no /proc/self/mem to lift the probes with
                        layers += (probes.LAYER,)
                        probed = frozenset(mark) | {op for op, by in probes.COVERED_BY.items() if by in mark}
            if src.key not in loaded:
                phase = "import"
                deadline = min(time.monotonic() + settings.import_timeout, budget_end)
                worker.send(
                    {
                        "op": "load",
                        "key": src.key,
                        "units": [{"name": u.name, "text": u.text} for u in src.units],
                        "watch": watch,
                    },
                    (),
                    deadline,
                )
                reply, _ = worker.recv(deadline)
                add_hits(imported_hits.setdefault(src.key, {}), hits_since_mark())
                if reply.get("op") != "loaded":
                    raise wire.ProtocolError("unexpected reply to load")
                if not reply.get("ok"):
                    err = decode_result(reply.get("error"), [])
                    if isinstance(err, Raised):
                        where = f" (line {err.frames[-1].line})" if err.frames else ""
                        message = f"importing {src.units[0].name} raised {err.headline}{where}"
                        errors.append(message)
                        broken[src.key] = (Status.ERROR, message, err.frames)
                    else:
                        broken[src.key] = (
                            Status.ERROR,
                            f"importing {src.units[0].name} raised NotImplementedError",
                            (),
                        )
                    raw.problem_status, raw.problem, raw.frames = broken[src.key]
                    drop_worker(kill=False)  # a fresh worker for other modules: no half-imported state
                    continue
                loaded.add(src.key)
            add_hits(raw.kernel, imported_hits.get(src.key, {}))
            phase = "run"
            deadline = min(time.monotonic() + settings.timeout, budget_end)
            # An exercise that forbids nothing has nothing to hide: its calls are not traced. Nor
            # are those of one whose forbidden ops the kernel probes all count: their verdict
            # never depended on the trace (which costs every torch op a trip through Python).
            request: dict[str, Any] = {
                "op": "run",
                "key": src.key,
                "func": ex.func,
                "trace": bool(pe.forbidden.keys() - probed),
            }
            if plan.preloaded is not None:  # the worker inherited the inputs from the fork-server
                request["preloaded"] = [plan.preloaded, ex.id]
                worker.send(request, (), deadline)
            else:
                worker.send({**request, "cases": pe.run_cases}, pe.blobs, deadline)
            busy = time.monotonic()
            overlap(index + 1, running=pe)
            deadline += time.monotonic() - busy  # the parent's own work never counts against the student
            while True:
                header, blobs = worker.recv(deadline)
                op = header.get("op")
                if op == "missing":
                    raw.missing = f"no function {ex.func} in {src.units[0].name if src.units else src.key}"
                    break
                if op == "end":
                    if done != n:
                        raise wire.ProtocolError("the worker skipped cases")
                    break
                if op != "case" or done >= n or header.get("id") != pe.cases[done].id:
                    raise wire.ProtocolError("unexpected case reply")
                raw.outcomes[done] = decode_result(header.get("result"), blobs)
                ops = header.get("ops", [])
                raw.ops[done] = {str(o)[:80] for o in ops[:400]} if isinstance(ops, list) else set()
                secs = header.get("seconds")
                raw.seconds[done] = float(secs) if isinstance(secs, (int, float)) else 0.0
                why = header.get("untraced")
                if why:
                    raw.untraced[done] = str(why)[:500]
                done += 1
        except WorkerTimeout:
            drop_worker(kill=True)
            if phase == "import":
                message = (
                    f"importing {src.units[0].name} took longer than {settings.import_timeout:g} s "
                    "(an infinite loop at the top level?)"
                )
                broken[src.key] = (Status.TIMEOUT, message, ())
                raw.problem_status, raw.problem = Status.TIMEOUT, message
            elif time.monotonic() >= budget_end:
                raw.problem_status = Status.TIMEOUT
                raw.problem = f"the submission's time budget ({settings.submission_timeout:g} s) ran out"
            else:
                raw.problem_status = Status.TIMEOUT
                raw.problem = f"took longer than {settings.timeout:g} s (an infinite loop, or a very slow loop in Python?)"
        except WorkerGone:
            info = worker.reap_after_eof() if worker is not None else None
            drop_worker(kill=False)
            what = info.describe() if info else "the process ended"
            if phase == "import":
                message = f"importing {src.units[0].name} ended the worker: {what}"
                broken[src.key] = (Status.ERROR, message, ())
                raw.problem_status, raw.problem = Status.ERROR, message
            else:
                raw.problem_status, raw.problem = Status.ERROR, f"your code ended the worker: {what}"
        except (wire.ProtocolError, ValueError, KeyError, TypeError, IndexError) as e:
            drop_worker(kill=True)
            raw.problem_status = Status.ERROR
            raw.problem = (
                f"the worker's reply was malformed ({e}): did your code write to the grader's channel?"
            )
        found = hits_since_mark()  # the worker is idle or gone: nothing it runs now is uncounted
        if phase == "import":
            add_hits(imported_hits.setdefault(src.key, {}), found)
        add_hits(raw.kernel, found)
        if internal:
            break
    if not internal:
        if worker is not None:
            worker.request_exit()  # it exits while the last exercises are judged
        overlap(len(plan))
    if internal:  # a grader bug: stop the worker, then let the caller turn it into a crash report
        drop_worker(kill=True)
        raise internal[0]
    if worker is not None:
        if retire is not None:
            retire(worker)
        else:
            with contextlib.suppress(Exception):
                worker.finish()
    return Execution(results, output, layers, errors, time.monotonic() - start)


# ----------------------------------------------------------------------------- judge


def _failing(status: Status) -> bool:
    return status in (Status.FAILED, Status.ERROR)


def _diagnose(pe: PlannedExercise, raw: RawExercise, statuses: list[Status]) -> dict[int, Misconception]:
    """Name misconceptions: a variant that matches the student's output on every case it applies to
    and explains a failure, or a detector that fires on a failing case."""
    fired: dict[int, Misconception] = {}
    ex = pe.exercise
    if not any(_failing(s) for s in statuses):
        return fired
    for d_index, d in enumerate(ex.diagnoses):
        if d.variant is not None:
            consistent, explained = True, []
            for i, pc in enumerate(pe.cases):
                got = raw.outcomes[i]
                if got is None or isinstance(got, NotImplementedYet):
                    continue
                if d.applies is not None and not d.applies(pc.call):
                    continue
                if not outcomes_agree(got, pe.variant(d_index, i), pc.tol):
                    consistent = False
                    break
                if _failing(statuses[i]):
                    explained.append(i)
            if consistent:
                for i in explained:
                    fired.setdefault(i, d.info)
        elif d.detect is not None:
            for i, pc in enumerate(pe.cases):
                got = raw.outcomes[i]
                if got is not None and _failing(statuses[i]) and i not in fired:
                    try:
                        if d.detect(got, pc.expected, pc.call):
                            fired[i] = d.info
                    except Exception:
                        continue
    return fired


def judge(pe: PlannedExercise, raw: RawExercise, settings: Settings) -> ExerciseResult:
    """Compare, diagnose and score one exercise (in the parent)."""
    ex = pe.exercise
    if raw.missing:
        cases = tuple(
            CaseResult(
                pc.id,
                pc.label,
                Status.NOT_ATTEMPTED,
                "",
                call=pc.recipe,
                hidden=pc.hidden,
                weight=pc.spec.weight,
            )
            for pc in pe.cases
        )
        return ExerciseResult(
            ex.id,
            ex.title,
            Status.NOT_ATTEMPTED,
            0.0,
            pe.points,
            f"not implemented yet: {raw.missing}",
            cases,
        )
    results: list[CaseResult] = []
    statuses: list[Status] = []
    failures: list[Failure | None] = []
    forbidden_used: dict[str, str] = {}
    untraced: dict[str, int] = {}  # why a call's op trace is void -> first case
    # Forbidden kernels the kernel probes counted but no call's op trace reported: the trace was
    # fooled or bypassed, so no call of this exercise can be vouched for.
    counted = {op for op, n in raw.kernel.items() if n > 0 and op in pe.forbidden}
    unreported = {op for op in counted if not any(op in ops for ops in raw.ops)}
    stopped = False
    for i, pc in enumerate(pe.cases):
        got = raw.outcomes[i]
        failure: Failure | None = None
        frames: tuple[Frame, ...] = ()
        used = (raw.ops[i] | unreported) & pe.forbidden.keys()
        if got is None:
            if raw.problem_status is not None and not stopped:
                status, message = raw.problem_status, raw.problem or ""
                frames = raw.frames
                stopped = True
            else:
                status, message = Status.SKIPPED, "not run (an earlier case stopped this exercise)"
        elif used:
            for op in sorted(used):
                forbidden_used[op] = pe.forbidden[op]
            status = Status.FORBIDDEN
            message = "used " + "; ".join(pe.forbidden[op] for op in sorted(used))
        elif i in raw.untraced:
            untraced.setdefault(raw.untraced[i], i)
            status = Status.FORBIDDEN
            message = f"not scored: the grader could not trace this call ({raw.untraced[i]})"
        elif isinstance(got, NotImplementedYet):
            status, message = Status.NOT_ATTEMPTED, "raised NotImplementedError"
        elif isinstance(got, Raised) and not isinstance(pc.expected, Raised):
            status, message, frames = Status.ERROR, f"raised {got.headline}", got.frames
        else:
            for check in ex.checks:
                try:
                    failure = check(got, pc.expected, pc.call, pc.tol)
                except Exception as e:  # a value the checks cannot handle (complex numbers, ...)
                    failure = Failure(
                        f"could not compare your value with the expected one ({type(e).__name__})"
                    )
                if failure is not None:
                    break
            status = Status.FAILED if failure else Status.PASSED
            message = failure.message if failure else ""
        statuses.append(status)
        failures.append(failure)
        results.append(
            CaseResult(
                id=pc.id,
                label=pc.label,
                status=status,
                message=message,
                details=failure.details if failure else (),
                call=pc.recipe,
                hidden=pc.hidden,
                weight=pc.spec.weight,
                expected=(failure.expected if failure and not pc.hidden else None),
                got=(failure.got if failure and not pc.hidden else None),
                traceback=frames,
            )
        )
    try:
        fired = _diagnose(pe, raw, statuses)
    except Exception:  # a value the diagnoses cannot handle: no misconception named
        fired = {}
    misconceptions: list[Misconception] = []
    for i, info in sorted(fired.items()):
        results[i] = replace(results[i], misconception=info.name)
        if info not in misconceptions:
            misconceptions.append(info)
    if statuses and all(s is Status.NOT_ATTEMPTED for s in statuses):
        status = Status.NOT_ATTEMPTED
    else:
        status = worst([Status.FAILED if s is Status.NOT_ATTEMPTED else s for s in statuses])
    total_w = sum(pc.spec.weight for pc in pe.cases) or 1.0
    earned = sum(pc.spec.weight for pc, s in zip(pe.cases, statuses) if s is Status.PASSED)
    void = bool(forbidden_used or untraced)
    score = 0.0 if void or status is Status.NOT_ATTEMPTED else pe.points * earned / total_w
    if void:
        status = Status.FORBIDDEN
    message = ""
    if forbidden_used:
        names = "; ".join(dict.fromkeys(forbidden_used.values()))
        traced = sorted(set(forbidden_used) - unreported)
        counted_only = sorted(unreported & forbidden_used.keys())
        how = ["seen as aten." + ", aten.".join(traced)] if traced else []
        how += ["counted in torch's kernels as aten." + ", aten.".join(counted_only)] if counted_only else []
        message = f"implement it yourself: your {ex.func} called {names} ({'; '.join(how)})"
    elif untraced:
        message = f"not scored: the grader could not trace what your {ex.func} ran ({next(iter(untraced))})"
    elif status is Status.NOT_ATTEMPTED:
        message = "not implemented yet (the stub still raises NotImplementedError)"
    elif status is not Status.PASSED:
        first = next(r for r in results if r.status is not Status.PASSED)
        message = f"{first.label}: {first.message}"
    figures: tuple[Figure, ...] = ()
    if ex.figures is not None and settings.figures:
        try:
            figures = tuple(ex.figures(pe.cases, raw.outcomes, settings.pictures))
        except Exception:
            figures = ()
    notes = _notes(figures)
    return ExerciseResult(
        id=ex.id,
        title=ex.title,
        status=status,
        score=round(score, 4),
        max_score=pe.points,
        message=message,
        cases=tuple(results),
        misconceptions=tuple(misconceptions),
        hint=ex.hints[0] if ex.hints and status is not Status.PASSED else "",
        figures=figures,
        notes=notes,
    )


def _notes(figures: tuple[Figure, ...]) -> tuple[str, ...]:
    for f in figures:
        m = dict(f.metrics)
        if "PSNR presizing (dB)" in m and "PSNR resize then augment (dB)" in m:
            gain = m["PSNR presizing (dB)"] - m["PSNR resize then augment (dB)"]
            yours = m.get("PSNR yours (dB)")
            return (
                f"Presizing kept {gain:.1f} dB more detail than resize-then-augment "
                f"(PSNR {m['PSNR presizing (dB)']:.1f} dB vs {m['PSNR resize then augment (dB)']:.1f} dB against "
                f"the exact picture; yours: {yours:.1f} dB).",
            )
    return ()


def grade(
    submission: Submission,
    plan: Plan,
    new_worker: WorkerFactory,
    settings: Settings,
    *,
    hints_used: dict[str, int] | None = None,
    retire: Callable[[Worker], None] | None = None,
) -> tuple[Report, Execution]:
    """Grade one submission: run it in workers and judge every exercise here (while the worker runs the next).

    ``retire``: see :func:`execute`."""
    judged: dict[str, ExerciseResult] = {}

    def on_exercise(pe: PlannedExercise, raw: RawExercise) -> None:
        result = judge(pe, raw, settings)
        used = (hints_used or {}).get(pe.exercise.id, 0)
        if used and settings.hint_penalty:
            penalty = min(result.score, used * settings.hint_penalty)
            result = replace(result, score=round(result.score - penalty, 4))
        judged[pe.exercise.id] = result

    execution = execute(submission, plan, new_worker, settings, on_exercise, retire)
    exercises = [judged[ex.id] for ex in plan.specs]
    output = execution.output
    report = Report(
        submission=submission.name,
        exercises=tuple(exercises),
        grader_version=__version__,
        seed=plan.seed,
        hidden=plan.hidden,
        warnings=(*submission.notes, *static.review(submission)),
        errors=tuple([*submission.syntax_errors, *execution.errors]),
        isolation=execution.layers,
        output=Output(output.text(), output.total, output.total > len(output.kept)),
        hints_used=tuple(sorted((hints_used or {}).items())),
    )
    return report, execution


__all__ = ["Plan", "build_plan", "decode_result", "evaluate", "execute", "grade", "judge"]
