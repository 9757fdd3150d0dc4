"""``grade batch``: discover → read → skip what is already graded → grade in parallel → record →
feedback → exports. The batch parent is the only writer of the gradebook; it never runs student
code and never judges (the grading processes do, each with its own fork-server and plan).

Exactly once: a submission is recorded in one transaction (result + history row) when its
grading finishes. A re-run skips every (student, content hash) already graded with the same
grader version and course configuration; whatever was in flight when a run died is graded then.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import os
import signal
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TextIO

from grader.errors import GraderError, SubmissionError, UsageError
from grader.settings import Settings, load_course
from grader.submission import read_submission
from grader.version import __version__

from . import export
from .discover import Candidate, Unusable, as_utc, discover
from .gradebook import FILENAME, Gradebook, classify, dumps
from .progress import Progress
from .tasks import missing_layers, submission_to_dict

if TYPE_CHECKING:  # pragma: no cover
    from .classreport import Painter


class SandboxMissing(GraderError):
    """The isolation layers a batch needs are not all available."""


@dataclass(frozen=True)
class BatchOptions:
    """What ``grade batch`` was asked to do (the CLI's options, one field each)."""

    source: Path
    out: Path
    config: Path | None = None
    jobs: int | None = None
    scheduler: str | None = None
    force: bool = False
    feedback: tuple[str, ...] = export.DEFAULT_FEEDBACK
    assignment: str | None = None
    only: tuple[str, ...] = ()
    timeout: float | None = None
    unsafe_no_sandbox: bool = False
    templates: Path | None = None
    progress: str = "auto"
    export_only: bool = False


@dataclass
class BatchSummary:
    run: int = 0
    discovered: int = 0
    graded: int = 0
    skipped: int = 0
    unusable: list[tuple[str, str, str]] = field(default_factory=list)  #: (student, path, reason)
    grader_errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    layers: tuple[str, ...] = ()
    outputs: list[Path] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "discovered": self.discovered,
            "graded": self.graded,
            "skipped": self.skipped,
            "unusable": len(self.unusable),
        }


@dataclass(frozen=True)
class CourseBatch:
    """The ``[batch]`` table of a course file: ``due`` (hand-in deadline), ``title`` (class report)."""

    due: datetime | None = None
    title: str = "Class report"


def load_batch_section(path: Path | None) -> CourseBatch:
    if path is None:
        return CourseBatch()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return CourseBatch()  # load_course has already said what is wrong with the file
    if path.name == "pyproject.toml":
        raw = raw.get("tool", {}).get("imgclass-kit", {})
    section = raw.get("batch", {})
    unknown = set(section) - {"due", "title"}
    if unknown:
        raise UsageError(f"{path}: unknown [batch] setting(s): {', '.join(sorted(unknown))}")
    due = None
    if "due" in section:
        due = as_utc(section["due"])
        if due is None:
            raise UsageError(f"{path}: [batch] due must be a date and time, e.g. 2026-12-01T23:59:00Z")
    return CourseBatch(due=due, title=str(section.get("title", "Class report")))


def course_settings(opts: BatchOptions) -> Settings:
    settings = load_course(opts.config).with_overrides(timeout=opts.timeout)
    if "html" in opts.feedback:
        settings = replace(settings, pictures=True)
    return settings


def check_sandbox(layers: list[tuple[str, ...]], unsafe: bool) -> tuple[str, ...]:
    """Refuse to go on unless every grading process's workers got every required layer."""
    missing = sorted({m for ls in layers for m in missing_layers(ls)})
    if missing and not unsafe:
        reasons = ""
        with contextlib.suppress(Exception):
            from grader import isolation

            caps = isolation.probe()
            if caps.missing:
                reasons = " (" + "; ".join(caps.missing) + ")"
        raise SandboxMissing(
            f"Refusing to run students' code without a full sandbox: missing {', '.join(missing)}{reasons}. "
            "Run on a Linux machine with namespaces and seccomp (root or unprivileged user namespaces), "
            "or pass --unsafe-no-sandbox if you trust every submission."
        )
    return layers[0] if layers else ()


def _executor(opts: BatchOptions, settings: Settings, log: IO[bytes]) -> Any:
    if opts.scheduler:
        from .cluster import DaskPool

        return DaskPool(settings, scheduler=opts.scheduler, only=opts.only, jobs=opts.jobs)
    from .pool import LocalPool

    return LocalPool(settings, only=opts.only, jobs=opts.jobs, log=log, fork=True)


def _crash_report(name: str, settings: Settings, message: str) -> dict[str, Any]:
    from grader.model import Report

    return Report(
        submission=name,
        exercises=(),
        grader_version=__version__,
        seed=settings.seed,
        hidden=settings.hidden_seed is not None,
        crash=message,
    ).to_dict()


def _result_line(report: dict[str, Any], status: str) -> str:
    return f"{round(report['score'], 2):g}/{report['max_score']:g} {status.replace('_', ' ')}"


def run_batch(opts: BatchOptions, *, stream: TextIO | None = None) -> BatchSummary:
    """Grade every submission under ``opts.source`` into ``opts.out`` (see the module docstring)."""
    from grader.memory import HUGE_PAGES_AHEAD, WARM_MIB_MAX, WARM_MIB_PER_FORK_SERVER, keep_freed_memory

    from .classreport import Painter
    from .pool import batch_scheduling, job_count

    restore_scheduling = batch_scheduling()  # for this process and every process of the batch
    # first of all: the class report's helper imports matplotlib while this process imports torch,
    # and warms the huge pages this machine's fork-servers will move into, if the class is large
    # enough for them to move (see grader.memory.warm_huge_pages)
    warm = 0
    if not (opts.scheduler or opts.export_only):
        jobs = job_count(opts.jobs)
        if _at_least(opts.source, HUGE_PAGES_AHEAD * jobs):
            warm = min(WARM_MIB_PER_FORK_SERVER * jobs, WARM_MIB_MAX)
    painter = Painter.start(warm_mib=warm)
    keep_freed_memory()  # for this process and the grading processes it forks
    try:
        return _run_batch(opts, stream, painter)
    finally:
        if painter is not None:
            painter.close()
        if restore_scheduling is not None:
            restore_scheduling()


def _run_batch(opts: BatchOptions, stream: TextIO | None, painter: Painter | None) -> BatchSummary:
    from grader import specs

    stream = stream or sys.stderr
    unknown = [f for f in opts.feedback if f not in export.FEEDBACK_FILES]
    if unknown:
        raise UsageError(
            f"Unknown feedback format '{unknown[0]}' (choose from {', '.join(export.FEEDBACK_FILES)})"
        )
    settings = course_settings(opts)
    course = load_batch_section(opts.config)
    wanted = opts.only or settings.exercises
    specs.select(wanted)  # unknown exercise names fail here, before any process starts
    modules = specs.MODULES
    config = settings.fingerprint() + (":" + ",".join(sorted(opts.only)) if opts.only else "")
    out = opts.out
    out.mkdir(parents=True, exist_ok=True)
    summary = BatchSummary()
    started = time.monotonic()
    lock = _lock(out)
    log: IO[bytes] | None = None
    executor: Any = None
    try:
        if not opts.export_only:
            log = open(out / "batch.log", "ab")  # noqa: SIM115 - closed in finally
            if not opts.scheduler:
                # The grading processes start now, while this process holds nothing of the class:
                # they build their plans while discovery runs (forked from here: see grader.batch.pool).
                executor = _executor(opts, settings, log)
                executor.launch()
        book = Gradebook(out / FILENAME)
    except BaseException:
        if executor is not None:
            with contextlib.suppress(Exception):
                executor.kill()
        if log is not None:
            log.close()
        lock.close()
        raise
    try:
        if course.title != book.meta("title", "Class report"):
            book.set_meta("title", course.title)
        if opts.export_only:
            summary.outputs += write_exports(book, out, templates=opts.templates, painter=painter)
            return summary
        # discovery first: cheap (names only), gives the progress bar its total, and finds usage errors
        found = list(discover(opts.source, assignment=opts.assignment, exclude=out))
        gc.freeze()  # what exists now lives for the whole batch: spare the garbage collector from it
        assert log is not None
        if executor is None:
            executor = _executor(opts, settings, log)
        progress: Progress | None = None
        run = 0
        try:
            layers = executor.start()
            summary.layers = check_sandbox(layers, opts.unsafe_no_sandbox)
            run = book.start_run(
                source=str(opts.source),
                grader_version=__version__,
                config=config,
                executor=executor.name if not opts.scheduler else f"dask:{opts.scheduler}",
                jobs=len(layers),
                unsafe=opts.unsafe_no_sandbox,
            )
            summary.run = run
            progress = Progress(len(found), mode=opts.progress, stream=stream)
            _grade_all(
                book,
                run,
                found,
                executor,
                opts,
                settings,
                course,
                modules,
                config,
                summary,
                progress,
                len(layers),
            )
            book.finish_run(
                run, status="finished", counts=summary.counts(), isolation=" ".join(summary.layers)
            )
        except BaseException:
            with contextlib.suppress(Exception):
                executor.kill()
            if run:
                with contextlib.suppress(Exception):
                    book.finish_run(run, status="interrupted", counts=summary.counts())
            raise
        finally:
            if progress is not None:
                progress.close()
            with contextlib.suppress(Exception):
                executor.close(wait=False)  # they wind down while the exports are written
            log.close()
            log = None
        _catch_up_feedback(book, opts)
        summary.outputs += write_exports(book, out, templates=opts.templates, painter=painter)
        with contextlib.suppress(Exception):
            executor.close()
        executor = None
        if summary.run:
            book.run_stats(summary.run, **_own_usage())
    finally:
        if executor is not None:  # stopped early (a usage error, Ctrl-C, a failed export, ...)
            with contextlib.suppress(Exception):
                executor.kill()
        if log is not None:
            log.close()
        book.close()
        lock.close()
    summary.seconds = time.monotonic() - started
    return summary


def _at_least(source: Path, n: int) -> bool:
    """Whether ``source`` holds at least ``n`` entries, or its ``submitted/`` does (nbgrader): a
    quick guess of the class size, before discovery (every layout has a folder entry per student)."""
    for folder in (source / "submitted", source):
        try:
            with os.scandir(folder) as entries:
                if sum(1 for _ in itertools.islice(entries, n)) >= n:
                    return True
        except OSError:
            continue
    return False


def _lock(out: Path) -> IO[str]:
    """One batch per output folder at a time (two would grade the same students twice)."""
    f = open(out / ".batch.lock", "a+", encoding="utf-8")  # noqa: SIM115 - closed by the caller
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory lock
        return f
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "?"
        f.close()
        raise UsageError(
            f"Another `grade batch` (pid {holder}) is writing to {out}: wait for it, or stop it"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def _grade_all(
    book: Gradebook,
    run: int,
    found: list[Candidate | Unusable],
    executor: Any,
    opts: BatchOptions,
    settings: Settings,
    course: CourseBatch,
    modules: tuple[str, ...],
    config: str,
    summary: BatchSummary,
    progress: Progress,
    jobs: int = 1,
) -> None:
    inflight: dict[int, tuple[Candidate, str, str | None, bool | None, str]] = {}

    def problem(student: str | None, path: Path, reason: str) -> None:
        summary.unusable.append((student or "", str(path), reason))
        book.note_problem(run, student=student, path=str(path), reason=reason)
        if student is not None:  # feedback on an earlier submission would mislead now
            export.remove_feedback(opts.out, student)
        progress.message(f"cannot use {path}: {reason}")
        progress.skipped()

    def tasks() -> Iterator[dict[str, Any]]:
        for number, item in enumerate(found):
            if isinstance(item, Unusable):
                problem(item.student, item.path, item.reason)
                continue
            summary.discovered += 1
            try:
                submission = read_submission(item.path, modules)
            except SubmissionError as e:
                problem(item.student, item.path, str(e))
                continue
            except OSError as e:
                problem(item.student, item.path, f"cannot read it: {e.strerror or e}")
                continue
            digest = submission.digest()
            existing = book.lookup(item.student, digest, __version__, config)
            if existing is not None and existing.graded and not opts.force:
                book.mark_current(
                    run,
                    student=item.student,
                    submission=existing.submission,
                    name=item.name,
                    email=item.email,
                )
                summary.skipped += 1
                progress.skipped()
                continue
            when = item.submitted_at.isoformat() if item.submitted_at else None
            late = (item.submitted_at > course.due) if (item.submitted_at and course.due) else None
            inflight[number] = (item, digest, when, late, submission.name)
            # about how many more each grading process gets (the rest may be skipped: an upper bound)
            ahead = (len(found) - number) // max(1, jobs)
            yield {"id": number, "submission": submission_to_dict(submission), "ahead": ahead}

    for result in executor.run(tasks()):
        item, digest, when, late, name = inflight.pop(int(result["id"]))
        if "error" in result:
            report = _crash_report(name, settings, str(result["error"]))
            summary.grader_errors += 1
        else:
            report = result["report"]
            missing = missing_layers(report.get("isolation", ()))
            if report.get("isolation") and missing and not opts.unsafe_no_sandbox:
                raise SandboxMissing(
                    f"A worker ran {item.student}'s code without {', '.join(missing)}: stopping the batch "
                    "(nothing from it was recorded). Pass --unsafe-no-sandbox to accept this."
                )
        book.record(
            run,
            student=item.student,
            name=item.name,
            email=item.email,
            content_hash=digest,
            layout=item.layout,
            path=str(item.path),
            submitted_at=when,
            late=late,
            report=report,
            report_json=dumps(report),
            config=config,
            seconds=result.get("seconds"),
        )
        status, _ = classify(report)
        summary.graded += 1
        summary.statuses[status] = summary.statuses.get(status, 0) + 1
        if opts.feedback:
            stamp = f"{digest}:{config}"
            export.write_feedback(
                opts.out, item.student, report, opts.feedback, stamp, templates=opts.templates
            )
        progress.graded_one(item.student, _result_line(report, status))


def _catch_up_feedback(book: Gradebook, opts: BatchOptions) -> None:
    """Feedback for current results whose files are missing or stale (e.g. after a killed run)."""
    if not opts.feedback:
        return
    rows = book.db.execute(
        "SELECT st.id, sb.id, sb.content_hash, sb.config FROM students st "
        "JOIN submissions sb ON sb.id = st.current_submission WHERE sb.report IS NOT NULL ORDER BY st.id"
    ).fetchall()
    for student, submission, digest, config in rows:
        stamp = f"{digest}:{config}"
        if export.feedback_current(opts.out, student, stamp, opts.feedback):
            continue
        data = book.report_json(submission)
        if data is not None:
            export.write_feedback(
                opts.out, student, json.loads(data), opts.feedback, stamp, templates=opts.templates
            )


def write_exports(
    book: Gradebook, out: Path, *, templates: Path | None = None, painter: Painter | None = None
) -> list[Path]:
    """grades.csv and the class report, from the gradebook (its title is kept there)."""
    from .classreport import write_class_report

    grades = out / "grades.csv"
    export.write_grades_csv(book, grades)
    report = out / "class-report.html"
    write_class_report(
        book, report, templates=templates, title=book.meta("title", "Class report"), painter=painter
    )
    return [grades, report]


def _own_usage() -> dict[str, Any]:
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return {"peak_rss_kb": 0, "cpu_seconds": 0.0}
    me = resource.getrusage(resource.RUSAGE_SELF)
    return {"peak_rss_kb": int(me.ru_maxrss), "cpu_seconds": round(me.ru_utime + me.ru_stime, 3)}


def install_sigterm_handler() -> None:
    """SIGTERM stops a batch like Ctrl-C does (the gradebook keeps what was recorded)."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGTERM, handler)


def rerender_feedback(out: Path, formats: tuple[str, ...], templates: Path | None = None) -> int:
    """Render feedback again for every current result (``--feedback-only``); files written."""
    n = 0
    with Gradebook(out / FILENAME, create=False) as book:
        for student, data in book.current_reports():
            report = json.loads(data)
            sub = book.db.execute(
                "SELECT content_hash, config FROM submissions sb JOIN students st ON st.current_submission = sb.id "
                "WHERE st.id = ?",
                (student,),
            ).fetchone()
            export.write_feedback(out, student, report, formats, f"{sub[0]}:{sub[1]}", templates=templates)
            n += 1
    return n


__all__ = ["BatchOptions", "BatchSummary", "SandboxMissing", "rerender_feedback", "run_batch"]
