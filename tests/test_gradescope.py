"""``grade gradescope``: the README's commands build the bundle and run it on an answer file laid out
as on Gradescope; results.json follows the schema, with hidden cases shown after publishing; the
hidden seed reaches neither the kit nor the student's results, even when student code goes looking."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest
from conftest import ROOT, ZOO
from test_release import course_toml, hidden_seed, run_readme_commands

from grader import isolation, specs
from grader.errors import UsageError
from grader.gradescope import CPU_INDEX, build_bundle, torch_pin

SCHEMA = json.loads((ROOT / "schemas" / "gradescope.schema.json").read_text())
TOTAL = sum(e.points for e in specs.ALL)


@pytest.fixture(scope="module")
def tried(tmp_path_factory) -> Path:
    """An instructor folder after the README's Gradescope commands (bundle built, then tried on
    my_answers.py = every function correct)."""
    folder = tmp_path_factory.mktemp("gradescope")
    (folder / "course.toml").write_text(course_toml())
    shutil.copy(ZOO / "all_correct.py", folder / "my_answers.py")
    results = run_readme_commands("Gradescope", folder)
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    assert "Wrote autograder.zip" in results[0].stdout
    assert "protections while student code ran: process" in results[2].stdout  # for the instructor's log
    return folder


def run_autograder(ag: Path, submission: Path | None) -> dict:
    """Lay out ``ag`` like /autograder with this submission, run the bundle's run_autograder."""
    sub = ag / "submission"
    shutil.rmtree(sub, ignore_errors=True)
    sub.mkdir(parents=True)
    if submission is not None:
        shutil.copy(submission, sub / submission.name)
    shutil.rmtree(ag / "results", ignore_errors=True)
    env = {
        **{k: v for k, v in os.environ.items() if k != "IMGCLASS_HIDDEN_SEED"},
        "AUTOGRADER_ROOT": str(ag),
        "IMGCLASS_PYTHON": sys.executable,
        "PYTHONPATH": str(ag / "source" / "kit"),
    }
    proc = subprocess.run(
        ["bash", str(ag / "source" / "run_autograder")], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads((ag / "results" / "results.json").read_text())
    jsonschema.validate(data, SCHEMA)
    return data


def by_name(data: dict) -> dict[str, dict]:
    return {t["name"]: t for t in data["tests"]}


def test_bundle_layout_and_pins(tried):
    with zipfile.ZipFile(tried / "autograder.zip") as zf:
        infos = {i.filename: i for i in zf.infolist()}
        names = sorted(infos)
        assert {"setup.sh", "run_autograder", "course.toml"} <= set(names)
        assert all(n in ("setup.sh", "run_autograder", "course.toml") or n.startswith("kit/") for n in names)
        for script in ("setup.sh", "run_autograder"):
            assert (infos[script].external_attr >> 16) & 0o777 == 0o755
        assert (infos["course.toml"].external_attr >> 16) & 0o777 == 0o600
        assert zf.read("course.toml").decode() == course_toml()
        setup = zf.read("setup.sh").decode()
        assert f'--index-url {CPU_INDEX} "torch=={torch_pin()}"' in setup
        assert "kit/exercises/losses.py" in names and "kit/pyproject.toml" in names
        assert not [n for n in names if "/solutions/" in n or "/tests/" in n or n.startswith("solutions")]
        seed = str(hidden_seed()).encode()
        assert [n for n in names if seed in zf.read(n)] == ["course.toml"]
    for script in ("setup.sh", "run_autograder"):
        assert subprocess.run(["bash", "-n", str(tried / "ag" / "source" / script)]).returncode == 0


def test_same_inputs_same_zip(tried, tmp_path):
    first = build_bundle(tmp_path / "a.zip", config=tried / "course.toml")
    second = build_bundle(tmp_path / "b.zip", config=tried / "course.toml")
    assert first == second
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


def test_correct_submission_scores_everything(tried):
    data = json.loads((tried / "ag" / "results" / "results.json").read_text())
    jsonschema.validate(data, SCHEMA)
    assert data["score"] == pytest.approx(TOTAL)
    tests = by_name(data)
    assert sum(t["max_score"] for t in data["tests"]) == pytest.approx(TOTAL)
    assert all(t["status"] == "passed" and t["score"] == pytest.approx(t["max_score"]) for t in data["tests"])
    for e in specs.ALL:
        visible = tests[f"{e.id}: {e.title}"]
        assert visible["visibility"] == "visible"
        if any(c.random for c in e.cases):  # with a hidden seed, its hidden cases are a test of their own
            hidden = tests[f"{e.id}: {e.title} (hidden cases)"]
            assert hidden["visibility"] == "after_published"
            assert visible["max_score"] + hidden["max_score"] == pytest.approx(e.points)
    assert data["stdout_visibility"] == "hidden"


def test_wrong_submission_loses_points_and_is_explained(tried):
    data = run_autograder(tried / "ag", ZOO / "lr_groups_linear_spacing.py")
    tests = by_name(data)
    title = "learning_rates.lrs_for_groups: lrs_for_groups(lr, n_groups)"
    assert tests[title]["status"] == "failed"
    assert 0 < tests[title]["score"] < tests[title]["max_score"]
    assert "lr-groups-linear-spacing" in tests[title]["output"]
    assert tests[title]["extra_data"]["misconceptions"] == ["lr-groups-linear-spacing"]
    assert tests[title + " (hidden cases)"]["visibility"] == "after_published"
    assert data["score"] == pytest.approx(sum(t["score"] for t in data["tests"]))
    assert 0 < data["score"] < 2  # only this exercise is attempted, and it is partly wrong
    others = [t for name, t in tests.items() if not name.startswith("learning_rates.lrs_for_groups")]
    assert others and all(t["score"] == 0 and t["status"] == "failed" for t in others)


def test_no_submission_still_writes_results(tried):
    data = run_autograder(tried / "ag", None)
    assert data["score"] == 0
    assert "No exercises/ folder, .py or .ipynb found" in data["output"]
    assert sum(t["max_score"] for t in data["tests"]) == pytest.approx(TOTAL)


def test_student_code_cannot_read_the_hidden_seed(tried, tmp_path):
    caps = isolation.probe()
    if not (caps.namespaces or (caps.root and caps.cap_sys_admin)):
        pytest.skip(f"no file-system isolation or uid drop here: {'; '.join(caps.missing)}")
    ag = tried / "ag"
    (ag / "source" / "course.toml").chmod(0o600)  # what setup.sh does
    snoop = tmp_path / "snoop.py"
    snoop.write_text(
        "import os\n\n\n"
        "def breed_from_filename(fname):\n"
        "    found = []\n"
        f"    for path in [{str(ag / 'source' / 'course.toml')!r}, '/autograder/source/course.toml',\n"
        "                 'course.toml', '../source/course.toml']:\n"
        "        try:\n"
        "            found.append(open(path).read())\n"
        "        except OSError as e:\n"
        "            found.append(type(e).__name__)\n"
        "    found.append(os.environ.get('IMGCLASS_HIDDEN_SEED', ''))\n"
        "    return ' | '.join(found)\n"
    )
    data = run_autograder(ag, snoop)
    text = json.dumps(data)
    assert (
        "returned" in by_name(data)["regex_labels.breed_from_filename: breed_from_filename(fname)"]["output"]
    )
    assert str(hidden_seed()) not in text


def test_bundle_refuses_minimal_isolation_with_a_hidden_seed(tmp_path):
    config = tmp_path / "course.toml"
    config.write_text(course_toml() + 'isolation = "minimal"\n')
    with pytest.raises(UsageError, match="isolation = 'minimal'"):
        build_bundle(tmp_path / "autograder.zip", config=config)
    assert not (tmp_path / "autograder.zip").exists()
