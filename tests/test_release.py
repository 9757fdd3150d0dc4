"""``grade release``: the README's commands build the student kit; the kit holds no solution and no
hidden seed; its ``grade`` works after ``pip install .`` in a fresh venv; the guards refuse leaks."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from grader import specs
from grader.errors import GraderError, UsageError
from grader.release import KIT_DIRS, build_release

BIN = Path(sys.executable).parent


def readme_blocks(section: str, lang: str) -> list[str]:
    """The ```lang blocks of a README section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"README has no section '{section}'"
    return re.findall(rf"```{lang}\n(.*?)```", match.group(1), re.S)


def run_readme_commands(section: str, cwd: Path) -> list[subprocess.CompletedProcess[str]]:
    """Run each line of the section's ```sh blocks, as pasted into a shell with the kit's venv active."""
    env = {k: v for k, v in os.environ.items() if k != "IMGCLASS_HIDDEN_SEED"}
    env.update(NO_COLOR="1", PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    results = []
    for block in readme_blocks(section, "sh"):
        for line in block.splitlines():
            if line.strip():
                results.append(
                    subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True)
                )
    return results


def course_toml() -> str:
    [toml] = readme_blocks("For instructors: release", "toml")
    return toml


def hidden_seed() -> int:
    return int(re.search(r"hidden_seed\s*=\s*(\d+)", course_toml()).group(1))  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> Path:
    """The kit built by the README's commands (from an instructor folder holding course.toml)."""
    instructor = tmp_path_factory.mktemp("course") / "instructor"
    instructor.mkdir()
    (instructor / "course.toml").write_text(course_toml())
    build, check = run_readme_commands("For instructors: release", instructor)
    assert build.returncode == 0, build.stderr
    assert "Wrote the student kit" in build.stdout
    # `cd ../chapter5-kit && grade`: the untouched stubs, all not attempted (exit code 1: not all passed)
    assert check.returncode == 1, check.stdout + check.stderr
    assert f"{len(specs.ALL)} not attempted yet" in check.stdout
    assert "Traceback" not in check.stdout + check.stderr
    return instructor.parent / "chapter5-kit"


# ----------------------------------------------------------------------------- what is (not) in the kit


def test_kit_holds_the_allow_list_only(kit):
    top = sorted(p.name for p in kit.iterdir())
    assert top == sorted([*KIT_DIRS, "README.md", "pyproject.toml"])
    stubs = sorted(p.name for p in (kit / "exercises").glob("*.py"))
    assert stubs == sorted(f"{m}.py" for m in specs.MODULES)
    for stub in stubs:
        assert (kit / "exercises" / stub).read_bytes() == (ROOT / "exercises" / stub).read_bytes()
    names = [str(p.relative_to(kit)) for p in kit.rglob("*")]
    for banned in ("solutions", "tests", "bench", ".ci", "__pycache__", ".git", ".venv"):
        assert not [n for n in names if banned in n.split(os.sep)], banned
    assert not [n for n in names if n.endswith(".toml") and n != "pyproject.toml"]
    assert "[tool.imgclass-kit]" not in (kit / "pyproject.toml").read_text()
    readme = (kit / "README.md").read_text()
    assert "pip install ." in readme and all(f"`{e.id}`" in readme for e in specs.ALL)


def test_kit_has_no_hidden_seed(kit):
    seed = str(hidden_seed()).encode()
    assert len(seed) >= 6
    hits = [p for p in kit.rglob("*") if p.is_file() and seed in p.read_bytes()]
    assert hits == []


def _function_bodies(source: str) -> dict[str, str]:
    out = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef):
            body = node.body[1:] if ast.get_docstring(node) is not None else node.body
            out[ast.dump(ast.Module(body=body, type_ignores=[]))] = node.name
    return out


def _python_sources(kit: Path) -> list[tuple[Path, str]]:
    import nbformat

    found = []
    for p in sorted(kit.rglob("*")):
        if p.suffix == ".py":
            found.append((p, p.read_text(encoding="utf-8")))
        elif p.suffix == ".ipynb":
            nb = nbformat.read(p, as_version=4)
            for cell in nb.cells:
                if cell.cell_type == "code":
                    code = "\n".join(x for x in cell.source.splitlines() if x.lstrip()[:1] not in ("%", "!"))
                    found.append((p, code))
    return found


def _code_lines(path: Path) -> set[str]:
    """The solution's lines of code (whitespace-normalised): no docstrings, comments, imports or signatures."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            skip.update(range(node.lineno, node.end_lineno + 1))
        if isinstance(node, (ast.Module, ast.FunctionDef)) and ast.get_docstring(node) is not None:
            doc = node.body[0]
            skip.update(range(doc.lineno, doc.end_lineno + 1))
        if isinstance(node, ast.FunctionDef):
            skip.update(range(node.lineno, node.body[0].lineno))  # the signature, however many lines
    lines = set()
    for number, line in enumerate(source.splitlines(), 1):
        code = " ".join(line.split("  #")[0].split())
        if number not in skip and len(code) >= 20 and not code.startswith("#"):
            lines.add(code)
    return lines


def test_kit_has_no_solution_body_or_distinctive_line(kit):
    solution_files = sorted((ROOT / "solutions").glob("*.py"))
    wanted: dict[str, str] = {}
    for sol in solution_files:
        wanted.update(
            {body: f"{sol.stem}.{name}" for body, name in _function_bodies(sol.read_text()).items()}
        )
    assert len(wanted) >= len(specs.ALL)
    for path, code in _python_sources(kit):
        leaked = set(_function_bodies(code)) & set(wanted)
        assert not leaked, f"{path}: {[wanted[b] for b in leaked]}"
    # Distinctive lines: solution code that neither the grader's own sources (whose references may
    # share a line such as `e / e.sum(...)`) nor the stubs' teaching docstrings contain. None of them
    # may appear anywhere in the kit.
    given = " ".join(
        " ".join(p.read_text(encoding="utf-8").split())
        for p in [*(ROOT / "grader").rglob("*.py"), *(ROOT / "exercises").glob("*.py")]
    )
    distinctive = {line for sol in solution_files for line in _code_lines(sol) if line not in given}
    assert len(distinctive) >= 30, "too few distinctive lines to prove anything"
    kit_text = {
        p: " ".join(p.read_text(encoding="utf-8", errors="replace").split())
        for p in kit.rglob("*")
        if p.is_file()
    }
    for line in sorted(distinctive):
        holders = [str(p.relative_to(kit)) for p, text in kit_text.items() if line in text]
        assert not holders, f"solution line {line!r} in {holders}"


# ----------------------------------------------------------------------------- the guards can fire


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A copy of the instructor's checkout (what build_release reads)."""
    root = tmp_path / "checkout"
    for d in (*KIT_DIRS, "solutions"):
        shutil.copytree(ROOT / d, root / d, ignore=shutil.ignore_patterns("__pycache__", "_bundled"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def test_release_refuses_a_stub_that_holds_a_solution(checkout, tmp_path):
    solved = (checkout / "solutions" / "learning_rates.py").read_text()
    (checkout / "exercises" / "learning_rates.py").write_text(
        solved.replace('"""Reference solutions', '"""Stubs')
    )
    out = tmp_path / "kit"
    with pytest.raises(GraderError, match=r"a solution: exercises/learning_rates\.py: lr_suggestions"):
        build_release(out, root=checkout)
    assert not out.exists()


def test_release_refuses_a_hidden_seed_anywhere(checkout, tmp_path):
    seed = hidden_seed()
    template = next((checkout / "templates").glob("*.j2"))
    template.write_text(template.read_text() + f"{{# tried with seed {seed} #}}\n")
    with pytest.raises(GraderError, match=rf"the hidden seed: templates/{re.escape(template.name)}"):
        build_release(tmp_path / "kit", root=checkout, hidden_seed=seed)
    assert not (tmp_path / "kit").exists()
    # The same checkout without the seed in it builds (the guard is about the seed, not the files).
    template.write_text(template.read_text().replace(str(seed), "<seed>"))
    assert build_release(tmp_path / "kit", root=checkout, hidden_seed=seed).files


def test_release_refuses_course_configs_and_short_seeds(checkout, tmp_path):
    (checkout / "grader" / "data" / "course.toml").write_text("[grading]\n")
    with pytest.raises(GraderError, match=r"a course config: grader/data/course\.toml"):
        build_release(tmp_path / "kit", root=checkout)
    with pytest.raises(UsageError, match="too short"):
        build_release(tmp_path / "kit2", root=checkout, hidden_seed=42)


def test_release_refuses_a_non_empty_out_folder(tmp_path):
    (tmp_path / "kit").mkdir()
    (tmp_path / "kit" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not an empty folder"):
        build_release(tmp_path / "kit")
    assert (tmp_path / "kit" / "notes.txt").read_text() == "mine"


# ----------------------------------------------------------------------------- pip install . in a fresh venv


def _deps_dir(tmp_path: Path) -> Path:
    """The project venv's packages (torch, numpy, ...) without imgclass-kit itself, as symlinks."""
    site = Path(next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()))
    deps = tmp_path / "deps"
    deps.mkdir()
    for entry in site.iterdir():
        name = entry.name.lower()
        if "imgclass" in name or name.startswith("__editable__") or name.endswith(".pth"):
            continue
        (deps / entry.name).symlink_to(entry)
    return deps


def test_kit_installs_with_pip_and_grade_runs_on_the_stubs(kit, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "_kit_test_deps.pth").write_text(f"{_deps_dir(tmp_path)}\n")  # deps only; never this checkout
    installed = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", str(python), "install", "-q"),
            *("--no-deps", "--no-build-isolation", str(kit)),
        ],
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr
    where = subprocess.run(
        [python, "-c", "import grader; print(grader.__file__)"], capture_output=True, text=True, cwd=tmp_path
    )
    assert where.stdout.strip().startswith(str(site)), where.stdout + where.stderr
    env = {"PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin:/bin", "NO_COLOR": "1", "HOME": str(tmp_path)}
    result = subprocess.run([venv / "bin" / "grade"], cwd=kit, env=env, capture_output=True, text=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"0 of {len(specs.ALL)} exercises passed, {len(specs.ALL)} not attempted yet" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    listed = subprocess.run([venv / "bin" / "grade", "--list"], env=env, capture_output=True, text=True)
    assert listed.returncode == 0 and all(e.id in listed.stdout for e in specs.ALL)
