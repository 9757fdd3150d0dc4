"""The ``grade`` command: a thin shell over grader.api. Exit codes: see ``grade --help``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from grader.errors import ExitCode, GraderError
from grader.settings import Settings
from grader.version import __version__

DEFAULTS = Settings()

EPILOG = """\b
Exit codes: 0 every exercise passed, 1 some did not, 2 usage or input
error (missing file, syntax error, bad notebook), 3 internal error.
"""


class KitGroup(click.Group):
    """``grade [PATH]`` is short for ``grade check [PATH]``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h", "--version")):
            args = ["check", *args]
        return super().parse_args(ctx, args)


@click.group(cls=KitGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="imgclass-kit")
def main() -> None:
    """Grade the chapter-5 exercises: `grade [PATH]` checks ./exercises (or PATH) and explains every mistake."""


def _fail(message: str, code: ExitCode = ExitCode.INPUT_ERROR) -> None:
    click.echo(f"grade: error: {message}", err=True)
    sys.exit(int(code))


def _default_path() -> Path:
    here = Path.cwd()
    if (here / "exercises").is_dir():
        return here / "exercises"
    raise GraderError("No exercises/ folder here: run `grade PATH` with a folder, a .py or an .ipynb")


@main.command(epilog=EPILOG)
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--only", multiple=True, help="Grade only this exercise, function or module (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the machine-readable report (JSON) on stdout.")
@click.option(
    "--timeout", type=float, default=None, help=f"Seconds per exercise [default: {DEFAULTS.timeout:g}]."
)
@click.option(
    "--config", type=click.Path(path_type=Path), help="Course settings (TOML): points, hidden seed, ..."
)
@click.option("--list", "list_", is_flag=True, help="List the exercises and their points.")
def check(
    path: Path | None,
    only: tuple[str, ...],
    as_json: bool,
    timeout: float | None,
    config: Path | None,
    list_: bool,
) -> None:
    """Grade a submission: a folder of exercise modules, a .py, or an .ipynb (default: ./exercises)."""
    try:
        if list_:
            from grader import specs

            for e in specs.ALL:
                click.echo(f"{e.id:36} {e.points:g} points  {e.title}")
            return
        from grader.api import Grader
        from grader.render import render
        from grader.settings import load_course

        settings = load_course(config).with_overrides(timeout=timeout)
        target = path if path is not None else _default_path()
        from grader import specs

        specs.select(only)  # unknown names fail before any work
        with Grader(settings, only=only) as g:
            report = g.grade_path(target)
        data = report.to_dict()
        click.echo(render(data, "json" if as_json else "terminal"), nl=False)
        if report.crash:
            click.echo(f"grade: {report.crash}", err=True)
            sys.exit(int(ExitCode.INTERNAL))
        if report.errors:
            click.echo(f"grade: error: {report.errors[0]}", err=True)
            sys.exit(int(ExitCode.INPUT_ERROR))
        sys.exit(int(ExitCode.OK if report.all_passed else ExitCode.FAILED))
    except GraderError as e:
        _fail(str(e), e.exit_code)


def run(argv: list[str] | None = None) -> Any:  # pragma: no cover - convenience for python -m grader
    return main.main(args=argv, prog_name="grade")
