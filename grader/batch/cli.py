"""``grade batch`` and ``grade override``: thin click commands over grader.batch.run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from grader.errors import ExitCode, GraderError, UsageError

from .export import DEFAULT_FEEDBACK, FEEDBACK_FILES

EPILOG = """\b
Layouts: nbgrader (submitted/<student>/<assignment>/), a Gradescope export
(submission_metadata.yml), a folder per student, or <student>.py/.ipynb files.
\b
Writes DIR/gradebook.sqlite, DIR/grades.csv, DIR/class-report.html and
DIR/feedback/<student>/report.*. Re-running grades only what is new or
changed (same content, grader version and config are skipped); --force
regrades everything.
\b
Exit codes: 0 the batch ran (whatever the students scored), 2 usage error or
missing sandbox, 3 internal error, 130 interrupted (what was graded is kept).
"""


def _fail(message: str, code: ExitCode = ExitCode.INPUT_ERROR) -> None:
    click.echo(f"grade: error: {message}", err=True)
    sys.exit(int(code))


def _internal(out: Path, error: Exception) -> None:
    import traceback

    log = out / "batch.log"
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as f:
            f.write("".join(traceback.format_exception(error)))
    except OSError:
        log = Path("(unwritable)")
    _fail(
        f"internal error: {type(error).__name__}: {error} (a bug in the grader; traceback in {log})",
        ExitCode.INTERNAL,
    )


def _formats(value: str) -> tuple[str, ...]:
    if value.strip().lower() in ("", "none"):
        return ()
    chosen = tuple(dict.fromkeys(f.strip() for f in value.split(",") if f.strip()))
    unknown = [f for f in chosen if f not in FEEDBACK_FILES]
    if unknown:
        raise UsageError(
            f"Unknown feedback format '{unknown[0]}' (choose from {', '.join(FEEDBACK_FILES)}, or none)"
        )
    return chosen


@click.command(epilog=EPILOG)
@click.argument("submissions", type=click.Path(path_type=Path), required=False)
@click.option(
    "--out",
    "out",
    metavar="DIR",
    type=click.Path(path_type=Path),
    required=True,
    help="Output folder (gradebook, exports).",
)
@click.option(
    "--config",
    type=click.Path(path_type=Path),
    help="Course settings (TOML): points, hidden seed, due date, ...",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help=f"Submissions graded at once [default: all cores = {os.cpu_count()}].",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Grade on a Dask cluster: tcp://HOST:8786, or 'local' for a LocalCluster on this machine.",
)
@click.option("--force", is_flag=True, help="Grade everything again, even unchanged submissions.")
@click.option(
    "--feedback",
    "feedback",
    default=",".join(DEFAULT_FEEDBACK),
    show_default=True,
    metavar="FORMATS",
    help=f"Per-student feedback formats, comma-separated ({', '.join(FEEDBACK_FILES)}) or none.",
)
@click.option(
    "--feedback-only", is_flag=True, help="Only render feedback again from the gradebook (no grading)."
)
@click.option("--export-only", is_flag=True, help="Only write grades.csv and the class report again.")
@click.option("--assignment", help="The nbgrader assignment to grade (when submitted/ holds several).")
@click.option("--only", multiple=True, help="Grade only this exercise, function or module (repeatable).")
@click.option("--timeout", type=float, default=None, help="Seconds per exercise (overrides the course file).")
@click.option(
    "--templates", type=click.Path(path_type=Path), help="Folder of templates overriding the packaged ones."
)
@click.option(
    "--progress",
    type=click.Choice(["auto", "bar", "plain", "none"]),
    default="auto",
    show_default=True,
    help="A progress bar on a terminal, plain lines otherwise.",
)
@click.option(
    "--unsafe-no-sandbox",
    is_flag=True,
    help="Grade even when isolation layers are missing (only for code you trust).",
)
def batch(
    submissions: Path | None,
    out: Path,
    config: Path | None,
    jobs: int | None,
    scheduler: str | None,
    force: bool,
    feedback: str,
    feedback_only: bool,
    export_only: bool,
    assignment: str | None,
    only: tuple[str, ...],
    timeout: float | None,
    templates: Path | None,
    progress: str,
    unsafe_no_sandbox: bool,
) -> None:
    """Grade a folder of submissions: gradebook, grades.csv, feedback and a class report in DIR."""
    from .run import BatchOptions, install_sigterm_handler, rerender_feedback, run_batch

    try:
        formats = _formats(feedback)
        if feedback_only:
            n = rerender_feedback(out, formats, templates)
            click.echo(f"wrote feedback for {n} students in {out / 'feedback'}")
            return
        if submissions is None and not export_only:
            raise UsageError("Give the folder of submissions: grade batch SUBMISSIONS --out DIR")
        install_sigterm_handler()
        summary = run_batch(
            BatchOptions(
                source=submissions or Path("."),
                out=out,
                config=config,
                jobs=jobs,
                scheduler=scheduler,
                force=force,
                feedback=formats,
                assignment=assignment,
                only=only,
                timeout=timeout,
                unsafe_no_sandbox=unsafe_no_sandbox,
                templates=templates,
                progress=progress,
                export_only=export_only,
            )
        )
    except KeyboardInterrupt:
        click.echo(
            "grade: interrupted; what was graded is kept in the gradebook (run again to go on)", err=True
        )
        sys.exit(130)
    except GraderError as e:
        _fail(str(e), e.exit_code)
    except Exception as e:  # a bug in the grader: one line here, the traceback in the log
        _internal(out, e)
    if not export_only:
        statuses = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(summary.statuses.items()))
        click.echo(
            f"graded {summary.graded}, unchanged {summary.skipped}, could not use {len(summary.unusable)}"
            + (f" ({statuses})" if statuses else "")
            + f" in {summary.seconds:.1f} s"
        )
        for student, where, reason in summary.unusable:
            click.echo(f"  could not use {where}{f' ({student})' if student else ''}: {reason}")
        if summary.grader_errors:
            click.echo(f"  {summary.grader_errors} grader error(s): they are graded again on the next run")
    for output in summary.outputs:
        click.echo(f"wrote {output}")


@click.command()
@click.argument("student")
@click.argument("exercise")
@click.argument("points", type=float, required=False)
@click.option("--why", required=True, help="The reason, kept with the override.")
@click.option(
    "--out",
    "out",
    metavar="DIR",
    type=click.Path(path_type=Path),
    required=True,
    help="The batch's output folder.",
)
@click.option("--clear", is_flag=True, help="Remove the override: the auto score counts again.")
@click.option(
    "--templates", type=click.Path(path_type=Path), help="Folder of templates overriding the packaged ones."
)
def override(
    student: str,
    exercise: str,
    points: float | None,
    why: str,
    out: Path,
    clear: bool,
    templates: Path | None,
) -> None:
    """Give STUDENT POINTS for EXERCISE by hand (kept apart from the auto score; totals are derived)."""
    from .gradebook import FILENAME, Gradebook
    from .run import write_exports

    try:
        if clear == (points is not None):
            raise UsageError("Give POINTS, or --clear to remove an override")
        with Gradebook(out / FILENAME, create=False) as book:
            auto = book.override(student, exercise, None if clear else points, why)
            write_exports(book, out, templates=templates)
        what = "cleared" if clear else f"set to {points:g}/{auto['max_score']:g}"
        click.echo(
            f"{student} {exercise}: override {what} (auto score {auto['score']:g}); wrote {out / 'grades.csv'}"
        )
    except GraderError as e:
        _fail(str(e), e.exit_code)
