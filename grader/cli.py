"""The ``grade`` command: a thin shell over grader.api. Exit codes: see ``grade --help``.

Subcommands live in their own modules and are loaded lazily (``LAZY``), so ``grade`` starts fast
and each feature owns its command.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import sys
import threading
import time
from pathlib import Path
from typing import NoReturn

# numpy's OpenBLAS would start a spinning thread per core in every grading process; the grader's
# own numerical work is small and torch keeps its own (one-thread) pool. Set before grader.settings
# is imported: it imports torch, and torch numpy, whose OpenBLAS reads this once, when loaded.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import click

from grader.errors import ExitCode, GraderError, UsageError
from grader.settings import Settings
from grader.version import __version__

DEFAULTS = Settings()

EPILOG = """\b
Exit codes: 0 every exercise passed, 1 some did not, 2 usage or input
error (missing file, syntax error, bad notebook), 3 internal error.
"""

#: name -> "module:attribute" of a click command, imported on first use.
LAZY: dict[str, str] = {
    "batch": "grader.batch.cli:batch",
    "override": "grader.batch.cli:override",
    "release": "grader.release:release",
    "nbgrader": "grader.nbgrader:nbgrader_cli",
    "gradescope": "grader.gradescope:gradescope_cli",
}


class KitGroup(click.Group):
    """``grade [PATH]`` is short for ``grade check [PATH]``; other commands load lazily."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (
            args[0] not in self.list_commands(ctx) and args[0] not in ("--help", "-h", "--version")
        ):
            args = ["check", *args]
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *LAZY})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        target = LAZY.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        try:
            command = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            return _unavailable(name, f"{type(e).__name__}: {e}")
        return command


def _unavailable(name: str, why: str) -> click.Command:
    @click.command(name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    def stub() -> None:
        _fail(f"'grade {name}' is not available in this installation ({why})")

    return stub


@click.group(cls=KitGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="imgclass-kit")
def main() -> None:
    """Grade the chapter-5 exercises: `grade [PATH]` checks ./exercises (or PATH) and explains every mistake."""


def run() -> NoReturn:
    """The ``grade`` executable: :func:`main`, then a quick exit.

    A normal exit of an interpreter that imported torch tears down every module and object first:
    about 0.3 s on a 2-core machine, after all the work is done and every file is closed. The
    other threads are still waited for, the ``atexit`` handlers still run and standard output is
    flushed: only that teardown is skipped.
    """
    try:
        main(prog_name="grade")
        code: object = 0
    except SystemExit as e:
        code = e.code
    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message"), as Python does it: printed, exit 1
        with contextlib.suppress(Exception):
            print(code, file=sys.stderr)
        code = 1
    for thread in threading.enumerate():  # what a normal exit waits for first
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code & 0xFF)


def _fail(message: str, code: ExitCode = ExitCode.INPUT_ERROR) -> None:
    click.echo(f"grade: error: {message}", err=True)
    sys.exit(int(code))


def _default_path() -> Path:
    here = Path.cwd()
    if (here / "exercises").is_dir():
        return here / "exercises"
    raise GraderError("No exercises/ folder here: run `grade PATH` with a folder, a .py or an .ipynb")


def _kit_dir(target: Path) -> Path:
    """The folder that holds a student's kit (where hint state is kept)."""
    target = target.resolve()
    folder = target if target.is_dir() else target.parent
    return folder.parent if folder.name == "exercises" else folder


@main.command(epilog=EPILOG)
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--only", multiple=True, help="Grade only this exercise, function or module (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the machine-readable report (JSON) on stdout.")
@click.option("--format", "formats", multiple=True, help="Report format (repeatable); see --formats.")
@click.option(
    "--out", "outs", multiple=True, type=click.Path(path_type=Path), help="File for the matching --format."
)
@click.option(
    "--templates", type=click.Path(path_type=Path), help="Folder of templates overriding the packaged ones."
)
@click.option(
    "--timeout", type=float, default=None, help=f"Seconds per exercise [default: {DEFAULTS.timeout:g}]."
)
@click.option(
    "--config", type=click.Path(path_type=Path), help="Course settings (TOML): points, hidden seed, ..."
)
@click.option(
    "--hint", "hint", metavar="EXERCISE", help="Show the next hint for an exercise (and remember it)."
)
@click.option("--list", "list_", is_flag=True, help="List the exercises and their points.")
@click.option("--formats", "list_formats", is_flag=True, help="List the report formats.")
def check(
    path: Path | None,
    only: tuple[str, ...],
    as_json: bool,
    formats: tuple[str, ...],
    outs: tuple[Path, ...],
    templates: Path | None,
    timeout: float | None,
    config: Path | None,
    hint: str | None,
    list_: bool,
    list_formats: bool,
) -> None:
    """Grade a submission: a folder of exercise modules, a .py, or an .ipynb (default: ./exercises)."""
    # Import the renderer (Jinja compiles a large regex at import) on a thread: it overlaps with
    # torch's import and with the parent waiting for its worker.
    threading.Thread(target=importlib.import_module, args=("grader.render",), daemon=True).start()
    try:
        from grader import hints, specs

        if list_:
            for e in specs.ALL:
                click.echo(f"{e.id:36} {e.points:g} points  {e.title}")
            return
        if hint:
            kit = _kit_dir(path) if path is not None else Path.cwd()
            exercise_id, n, total, text = hints.next_hint(hint, kit)
            click.echo(f"{exercise_id}, hint {n} of {total}:\n  {text}")
            return
        specs.select(only)  # unknown names fail before any work
        from grader.api import Grader
        from grader.render import FORMATS, render_report, use_color
        from grader.settings import load_course

        if list_formats:
            from grader.render import DESCRIPTIONS

            click.echo("\n".join(f"{f:12} {DESCRIPTIONS.get(f, '')}" for f in FORMATS))
            return
        wanted = list(formats) or ["json" if as_json else "terminal"]
        if as_json and formats:
            wanted.append("json")
        unknown = [f for f in wanted if f not in FORMATS]
        if unknown:
            raise UsageError(f"Unknown format '{unknown[0]}' (choose from {', '.join(FORMATS)})")
        if outs and len(outs) != len(formats):
            raise UsageError("Give one --out per --format (or none, to print to stdout)")

        settings = load_course(config).with_overrides(timeout=timeout)
        if "html" in wanted:
            settings = settings.with_overrides(pictures=True)
        target = path if path is not None else _default_path()
        started = time.perf_counter()
        with Grader(settings, only=only) as g:
            report = g.grade_path(target, hints_used=hints.used(_kit_dir(target)))
        seconds = time.perf_counter() - started  # for Gradescope's execution_time; reports hold no timings
        destinations: list[Path | None] = list(outs) or [None] * len(wanted)
        for fmt, dest in zip(wanted, destinations):
            color = fmt == "terminal" and dest is None and use_color(sys.stdout)
            text = render_report(report, fmt, templates=templates, color=color, execution_time=seconds)
            if dest is None:
                click.echo(text, nl=False, color=color or None)
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_text(text, encoding="utf-8")
        if report.crash:
            click.echo(f"grade: {report.crash}", err=True)
            sys.exit(int(ExitCode.INTERNAL))
        if report.errors:
            click.echo(f"grade: error: {report.errors[0]}", err=True)
            sys.exit(int(ExitCode.INPUT_ERROR))
        sys.exit(int(ExitCode.OK if report.all_passed else ExitCode.FAILED))
    except GraderError as e:
        _fail(str(e), e.exit_code)
