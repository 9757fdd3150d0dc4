"""The wheel ships the templates, stubs, schemas and data (and never the solutions); an editable
install finds the same templates in the checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from conftest import ROOT


def test_wheel_contents(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("imgclass_kit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {p.name for p in (ROOT / "templates").glob("*.j2")}
    assert templates and all(f"grader/_bundled/templates/{t}" in names for t in templates)
    assert "grader/_bundled/schemas/report.schema.json" in names
    assert "grader/_bundled/exercises/losses.py" in names
    assert "grader/data/oxford_pets_filenames.txt" in names
    assert not [n for n in names if n.startswith("solutions/") or "/solutions/" in n]
    assert not [n for n in names if n.startswith("tests/")]


def test_editable_install_finds_the_checkout_templates():
    from grader.render import templates_dir

    assert templates_dir() == ROOT / "templates"
