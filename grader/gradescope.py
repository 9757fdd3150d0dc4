"""Gradescope: ``grade gradescope --out autograder.zip`` builds the autograder bundle, and
``python -m grader.gradescope`` is what its ``run_autograder`` runs for every submission.

The bundle (the zip's root becomes ``/autograder/source`` on Gradescope)::

    setup.sh         run once when Gradescope builds the image: Python >= 3.11, a venv, a pinned
                     CPU-only torch, then ``pip install ./kit``
    run_autograder   grades /autograder/submission, writes /autograder/results/results.json
    kit/             the student kit, exactly as ``grade release`` builds it (no solutions, no seed)
    course.toml      the instructor's course config (``--config``), with the hidden seed

Only ``course.toml`` holds the hidden seed. Students never see ``/autograder/source``, and their code
runs in the grader's worker, whose file-system view leaves out the working directory
(``/autograder/source``) and everything outside the Python installation; ``setup.sh`` also makes
``course.toml`` readable by root only, and the worker drops to uid ``nobody``. The parent process
reads the seed; it never reaches a worker (hidden seeds make the fork-server a fresh spawn).

Results use the ``gradescope`` report format (``schemas/gradescope.schema.json``): one test per
exercise, and the exercise's hidden cases as a second test with ``visibility: after_published``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from grader.errors import ExitCode, GraderError, UsageError

if TYPE_CHECKING:
    from grader.model import Report
    from grader.settings import Settings

#: Where Gradescope puts everything (``AUTOGRADER_ROOT`` moves it, for tests).
DEFAULT_ROOT = "/autograder"
ROOT_ENV = "AUTOGRADER_ROOT"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  #: zip entries get this timestamp: the same inputs give the same zip

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder image.
# imgclass-kit {version}: a venv with a CPU-only torch {torch} and the kit from ./kit.
set -euo pipefail
SOURCE="${{AUTOGRADER_ROOT:-/autograder}}/source"
VENV="${{AUTOGRADER_ROOT:-/autograder}}/venv"

PY=""
for v in 3.13 3.12 3.11; do
    if command -v "python$v" >/dev/null && "python$v" -c "import ensurepip, venv" 2>/dev/null; then
        PY="python$v"
        break
    fi
done
if [ -z "$PY" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3.11 python3.11-venv libseccomp2 >/dev/null
    PY=python3.11
fi

"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet --index-url {index} "torch=={torch}"
printf 'torch=={torch}\\n' > "$SOURCE/constraints.txt"
"$VENV/bin/python" -m pip install --quiet -c "$SOURCE/constraints.txt" "$SOURCE/kit"

# The hidden seed: readable by root only (student code runs as uid nobody, in its own file-system view).
if [ -f "$SOURCE/course.toml" ]; then
    chmod 600 "$SOURCE/course.toml"
fi
"$VENV/bin/grade" --version
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this for every submission: it grades /autograder/submission and writes
# /autograder/results/results.json. AUTOGRADER_ROOT (default /autograder) and IMGCLASS_PYTHON
# (default: the venv setup.sh made) move things, for testing the bundle outside Gradescope.
set -uo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
PY="${IMGCLASS_PYTHON:-$ROOT/venv/bin/python}"
cd "$ROOT/source"
exec "$PY" -m grader.gradescope "$ROOT"
"""


# ----------------------------------------------------------------------------- the bundle


def torch_pin() -> str:
    """The torch version this grader was tested with (without a local tag such as +cpu)."""
    import torch

    return torch.__version__.split("+")[0]


def _add(zf: zipfile.ZipFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.external_attr = (0o100000 | mode) << 16  # a regular file with these permissions
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def build_bundle(out: str | os.PathLike[str], *, config: Path | None = None) -> list[str]:
    """Write the Gradescope autograder zip; returns its entry names."""
    from grader.release import build_release, check_seed, seed_leaks
    from grader.render import FORMATS
    from grader.settings import load_course
    from grader.version import __version__

    if "gradescope" not in FORMATS:
        raise GraderError("This grader has no 'gradescope' report format (grader/render.py FORMATS)")
    settings = load_course(config)  # fails early on a bad config
    check_seed(settings.hidden_seed)
    if settings.hidden_seed is not None and settings.isolation == "minimal":
        raise UsageError(
            "isolation = 'minimal' would let student code read course.toml and its hidden seed on "
            "Gradescope: leave isolation at 'auto' in the config you bundle"
        )
    out = Path(out)
    if out.suffix != ".zip":
        raise UsageError(f"--out {out}: Gradescope wants a .zip file")
    with tempfile.TemporaryDirectory(prefix="imgclass-gradescope-") as tmp:
        kit = build_release(Path(tmp) / "kit", hidden_seed=settings.hidden_seed)
        if settings.hidden_seed is not None and seed_leaks(kit.path, settings.hidden_seed):
            raise GraderError(
                "The kit would contain the hidden seed"
            )  # pragma: no cover - build_release checks
        entries: list[tuple[str, bytes, int]] = [
            (
                "setup.sh",
                SETUP_SH.format(version=__version__, torch=torch_pin(), index=CPU_INDEX).encode(),
                0o755,
            ),
            ("run_autograder", RUN_AUTOGRADER.encode(), 0o755),
        ]
        if config is not None:
            entries.append(("course.toml", Path(config).read_bytes(), 0o600))
        for rel in kit.files:
            entries.append((f"kit/{rel}", (kit.path / rel).read_bytes(), 0o644))
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".part")
        with zipfile.ZipFile(partial, "w") as zf:
            for name, data, mode in sorted(entries):
                _add(zf, name, data, mode)
        partial.replace(out)
    return sorted(name for name, _, _ in entries)


@click.command("gradescope")
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="The zip to upload to Gradescope."
)
@click.option(
    "--config",
    type=click.Path(path_type=Path),
    help="Your course config (points, hidden seed, ...): bundled as course.toml, which students never see.",
)
def gradescope_cli(out: Path, config: Path | None) -> None:
    """Build the Gradescope autograder bundle (setup.sh, run_autograder, the kit, your course config)."""
    from grader.settings import load_course

    try:
        names = build_bundle(out, config=config)
        hidden = load_course(config).hidden_seed is not None
    except GraderError as e:
        click.echo(f"grade: error: {e}", err=True)
        raise SystemExit(int(e.exit_code)) from None
    click.echo(f"Wrote {out} ({len(names)} files). Upload it as the assignment's autograder (zip file).")
    if not hidden:
        click.echo(
            "Note: no hidden seed (give --config course.toml with [grading] hidden_seed): public cases only."
        )
    raise SystemExit(int(ExitCode.OK))


# ----------------------------------------------------------------------------- running on Gradescope


def _input_error_report(message: str, settings: Settings) -> Report:
    """A Report for a submission that cannot be graded: every exercise not attempted, with the reason."""
    from grader import specs
    from grader.model import ExerciseResult, Report, Status
    from grader.version import __version__

    return Report(
        submission="submission",
        exercises=tuple(
            ExerciseResult(
                e.id, e.title, Status.NOT_ATTEMPTED, 0.0, float(settings.points.get(e.id, e.points)), message
            )
            for e in specs.select(settings.exercises)
        ),
        grader_version=__version__,
        seed=settings.seed,
        errors=(message,),
    )


def run(root: str | os.PathLike[str] = DEFAULT_ROOT) -> tuple[Path, Report]:
    """Grade ``<root>/submission`` and write ``<root>/results/results.json`` (always, even on errors)."""
    from grader.api import Grader
    from grader.model import Report
    from grader.render import render_report
    from grader.settings import Settings, load_course
    from grader.version import __version__

    root = Path(root)
    results = root / "results" / "results.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    config = root / "source" / "course.toml"
    started = time.perf_counter()
    settings: Settings = Settings()
    try:
        settings = load_course(config if config.is_file() else None)
        with Grader(settings) as g:
            report = g.grade_path(root / "submission")
    except GraderError as e:
        report = _input_error_report(str(e), settings)
    except Exception as e:  # the grader's own failure: still a results.json, score 0
        report = Report(
            submission="submission",
            exercises=(),
            grader_version=__version__,
            seed=settings.seed,
            crash=f"internal grader error: {type(e).__name__}: {e}",
        )
    text = render_report(report, "gradescope", execution_time=time.perf_counter() - started)
    partial = results.with_name(results.name + ".part")
    partial.write_text(text, encoding="utf-8")
    partial.replace(results)
    return results, report


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = args[0] if args else os.environ.get(ROOT_ENV, DEFAULT_ROOT)
    path, report = run(root)
    # run_autograder's output is for instructors only (results.json sets stdout_visibility: hidden).
    print(f"imgclass-kit: wrote {path}: score {report.score:g}/{report.max_score:g}")
    print(f"protections while student code ran: {', '.join(report.isolation) or 'none reported'}")
    for problem in (*report.errors, *([report.crash] if report.crash else [])):
        print(f"problem: {problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
