"""Shared fixtures: one Grader (fork-server + plan) per test session; paths of the repo and zoo."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "tests" / "submissions"
GRADE = str(Path(sys.executable).parent / "grade")


@pytest.fixture(scope="session")
def grader():
    from grader.api import Grader
    from grader.settings import Settings

    with Grader(Settings(timeout=5, import_timeout=5)) as g:
        yield g


def run_grade(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120):
    """Run the installed ``grade`` command; returns the CompletedProcess."""
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [GRADE, *args], cwd=cwd or ROOT, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def run_python(
    code: str, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -c code args`` in a fresh interpreter, from the repository (``grader`` importable):
    for what must not run in the test process (forks, process-wide settings, import order)."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def load_module(tmp_path: Path, name: str, text: str):
    """Write ``text`` (dedented) to ``tmp_path/name.py`` and import it as module ``name``."""
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(text))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
