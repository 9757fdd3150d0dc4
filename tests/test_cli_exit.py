"""The ``grade`` executable leaves without tearing torch down, yet loses nothing on the way out."""

from __future__ import annotations

import json
import os
import subprocess

from conftest import run_grade, run_python


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with its standard output block-buffered (a pipe, no PYTHONUNBUFFERED)."""
    return run_python(code, env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}, timeout=120)


def test_a_report_on_a_pipe_arrives_whole_with_its_exit_code() -> None:
    passed = run_grade("solutions", "--json")
    assert passed.returncode == 0, passed.stderr
    assert json.loads(passed.stdout)["score"] == json.loads(passed.stdout)["max_score"]
    failed = run_grade("exercises", "--json")
    assert failed.returncode == 1, failed.stderr
    assert json.loads(failed.stdout)["score"] == 0


def test_a_usage_error_keeps_its_exit_code_and_message() -> None:
    result = run_grade("no/such/folder")
    assert result.returncode == 2
    assert "No such file or folder" in result.stderr


def test_atexit_handlers_still_run_and_buffered_output_is_flushed() -> None:
    result = _run_python(
        "import atexit, sys\n"
        "from grader import cli\n"
        "atexit.register(print, 'the atexit handler ran')\n"
        "sys.argv = ['grade', '--version']\n"
        "cli.run()\n"
    )
    assert result.returncode == 0, result.stderr
    assert "imgclass-kit" in result.stdout and "the atexit handler ran" in result.stdout


def test_an_exit_with_a_message_prints_it_and_exits_1() -> None:
    result = _run_python(
        "import sys\nfrom grader import cli\ncli.main = lambda **kw: sys.exit('stopped: a message')\ncli.run()\n"
    )
    assert result.returncode == 1
    assert "stopped: a message" in result.stderr


def test_the_command_starts_without_importing_torch() -> None:
    """`grade --help`, `--version` and the batch parent's own modules need no torch (0.8 s)."""
    result = _run_python(
        "import sys\n"
        "import grader.cli, grader.settings, grader.seeds, grader.batch.cli, grader.batch.gradebook\n"
        "print('torch' in sys.modules)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
