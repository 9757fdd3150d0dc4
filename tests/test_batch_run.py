"""`grade batch` end to end: a small mixed class through the installed CLI, re-runs, overrides,
exports, the class report in headless Chromium, nbgrader hand-in times, the sandbox rule and Dask."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import ROOT, ZOO, run_grade, run_python

from grader.batch.progress import Progress

HIDDEN_SEED = 987_654_321
EXERCISES = ["losses.softmax", "losses.log_softmax", "regex_labels.breed_from_filename"]
COURSE = f"""
[grading]
hidden_seed = {HIDDEN_SEED}
exercises = {json.dumps(EXERCISES)}
timeout = 3
submission_timeout = 30

[points]
"losses.softmax" = 4

[batch]
due = 2026-12-01T23:59:00Z
title = "CS 231 pets — problem set 5"
"""
MAX_SCORE = 4 + 2 + 3

SNOOP = '''"""Prints everything it can find about its environment (a student looking for the hidden seed)."""
import os


def softmax(acts, dim=-1):
    print("ENVIRON", sorted(os.environ.items()))
    for path in ("/proc/self/environ", "/proc/1/environ", "/proc/1/cmdline", "/proc/self/cmdline"):
        try:
            with open(path, "rb") as f:
                print(path, f.read())
        except OSError as e:
            print(path, "unreadable:", e)
    e = (acts - acts.amax(dim=dim, keepdim=True)).exp()
    return e / e.sum(dim=dim, keepdim=True)
'''


def _class(root: Path) -> Path:
    subs = root / "subs"
    subs.mkdir(parents=True)
    correct = (ZOO / "all_correct.py").read_text()
    (subs / "ana.py").write_text(correct)
    (subs / "bob.py").write_text(correct + "\n\n" + (ZOO / "softmax_no_max_subtraction.py").read_text())
    shutil.copytree(ROOT / "exercises", subs / "carl" / "exercises")
    shutil.copy(ZOO / "notebook_all.ipynb", subs / "dora.ipynb")
    shutil.copy(ZOO / "syntax_error.py", subs / "emil.py")
    (subs / "fay.py").write_text(correct + "\n\n" + (ZOO / "forbidden_softmax.py").read_text())
    (subs / "gus.py").write_text(correct + "\n\n" + SNOOP)
    (subs / "hal").mkdir()
    (subs / "ivy").mkdir()
    shutil.copy(ZOO / "notebook_all.ipynb", subs / "ivy" / "a.ipynb")
    shutil.copy(ZOO / "notebook_all.ipynb", subs / "ivy" / "b.ipynb")
    (subs / "notes.txt").write_text("reminder: grade these")
    (root / "course.toml").write_text(COURSE)
    return subs


def _batch(subs: Path, out: Path, *extra: str, timeout: float = 600):
    return run_grade("batch", str(subs), "--out", str(out), *extra, timeout=timeout)


def _grades(out: Path) -> dict[str, dict[str, str]]:
    with (out / "grades.csv").open() as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def _db(out: Path) -> sqlite3.Connection:
    db = sqlite3.connect(out / "gradebook.sqlite")
    db.row_factory = sqlite3.Row
    return db


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    subs = _class(root)
    out = root / "out"
    result = _batch(subs, out, "--config", str(root / "course.toml"), "--jobs", "2")
    assert result.returncode == 0, result.stderr
    return root, subs, out, result


def test_grades_every_usable_submission_and_lists_the_rest(graded):
    _, _, out, result = graded
    assert "graded 7, unchanged 0, could not use 3" in result.stdout
    for reason in ("empty folder", "Two or more candidate notebooks", "not a submission"):
        assert reason in result.stdout
    rows = _grades(out)
    assert list(rows) == ["ana", "bob", "carl", "dora", "emil", "fay", "gus", "hal", "ivy"]
    # per-exercise columns, in the kit's order
    assert list(rows["ana"])[3:6] == [
        "regex_labels.breed_from_filename",
        "losses.softmax",
        "losses.log_softmax",
    ]
    expected = {
        "ana": ("passed", str(MAX_SCORE)),
        "carl": ("not_attempted", "0"),
        "dora": ("passed", str(MAX_SCORE)),
        "emil": ("input_error", "0"),  # one file with a syntax error: nothing runs
        "fay": ("forbidden", "5"),
        "gus": ("passed", str(MAX_SCORE)),
        "hal": ("unusable", "0"),
        "ivy": ("unusable", "0"),
    }
    for student, (status, total) in expected.items():
        assert (rows[student]["status"], rows[student]["total"]) == (status, total), student
    assert rows["bob"]["status"] == "partial" and 0 < float(rows["bob"]["losses.softmax"]) < 4
    assert all(r["max_score"] == str(MAX_SCORE) for r in rows.values())


def test_plain_progress_lines_when_not_a_terminal(graded):
    _, _, _, result = graded
    lines = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert len(lines) == 7
    assert any(line.startswith("[") and "ana: 9/9 passed" in line for line in lines)
    assert all("/s, ETA" in line for line in lines)


def test_gradebook_holds_students_submissions_cases_and_reports(graded):
    _, _, out, _ = graded
    db = _db(out)
    sub = db.execute(
        "SELECT sb.* FROM submissions sb JOIN students st ON st.current_submission = sb.id WHERE st.id = 'bob'"
    ).fetchone()
    assert len(sub["content_hash"]) == 64 and sub["graded_at"] and sub["grader_version"]
    assert sub["hidden"] == 1 and sub["seed"] == json.loads(sub["report"])["seed"]
    cases = db.execute(
        "SELECT case_id, status, misconception, hidden FROM case_results WHERE submission = ? AND exercise = ?",
        (sub["id"], "losses.softmax"),
    ).fetchall()
    assert any(c["hidden"] for c in cases), "the hidden seed adds hidden cases"
    assert any(c["misconception"] == "softmax-no-max-subtraction" for c in cases)
    assert db.execute("SELECT COUNT(*) FROM gradings").fetchone()[0] == 7
    problems = {r["path"].split("/")[-1]: r["reason"] for r in db.execute("SELECT * FROM problems")}
    assert set(problems) == {"hal", "ivy", "notes.txt"}


def test_the_hidden_seed_never_reaches_students_or_outputs(graded):
    _, _, out, _ = graded
    seed = str(HIDDEN_SEED)
    gus = json.loads((out / "feedback" / "gus" / "report.json").read_text())
    printed = gus["output"]["text"]
    assert "ENVIRON" in printed and "/proc/1/cmdline" in printed  # the snoop ran and was captured
    assert seed not in printed
    for path in out.rglob("*"):
        if path.is_file():
            assert seed.encode() not in path.read_bytes(), path


def test_feedback_per_student(graded):
    _, _, out, _ = graded
    for student in ("ana", "bob", "carl", "dora", "emil", "fay", "gus"):
        folder = out / "feedback" / student
        assert (folder / "report.md").is_file() and (folder / "report.json").is_file(), student
    assert not (out / "feedback" / "hal").exists()
    bob = (out / "feedback" / "bob" / "report.md").read_text()
    assert "softmax-no-max-subtraction" in bob


def test_class_report_content(graded):
    _, _, out, _ = graded
    html = (out / "class-report.html").read_text()
    assert "CS 231 pets — problem set 5" in html
    for needle in (
        "softmax-no-max-subtraction",
        "forbidden",
        "input error",
        "empty folder",
        "data:image/png;base64,",
    ):
        assert needle in html, needle
    assert "<script" not in html and "http://" not in html and "https://" not in html  # self-contained


def test_class_report_in_headless_chromium(graded):
    webdriver = pytest.importorskip("selenium.webdriver")
    if not shutil.which("chromium") or not shutil.which("chromedriver"):
        pytest.skip("chromium and chromedriver are needed (make system-deps)")
    _, _, out, _ = graded
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium")
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.get((out / "class-report.html").as_uri())
        assert driver.title == "CS 231 pets — problem set 5"
        for image in ("histogram", "status-plot"):
            width = driver.execute_script(
                "const i = document.getElementById(arguments[0]); return i.complete ? i.naturalWidth : 0;",
                image,
            )
            assert width > 100, image
        text = driver.find_element("tag name", "body").text
        assert "softmax-no-max-subtraction" in text
        assert "Slowest submissions" in text
    finally:
        driver.quit()


def test_rerun_grades_only_what_changed_and_force_regrades(graded, tmp_path):
    root, subs, out, _ = graded
    subs2, out2 = tmp_path / "subs", tmp_path / "out"
    shutil.copytree(subs, subs2)
    shutil.copytree(out, out2)
    config = str(root / "course.toml")
    again = _batch(subs2, out2, "--config", config, "--jobs", "1")
    assert again.returncode == 0, again.stderr
    assert "graded 0, unchanged 7" in again.stdout
    (subs2 / "bob.py").write_text((ZOO / "all_correct.py").read_text() + "\n# fixed the overflow\n")
    changed = _batch(subs2, out2, "--config", config, "--jobs", "1")
    assert "graded 1, unchanged 6" in changed.stdout, changed.stdout
    assert _grades(out2)["bob"]["status"] == "passed"
    assert "softmax-no-max-subtraction" not in (out2 / "feedback" / "bob" / "report.md").read_text()
    db = _db(out2)
    per_student = dict(db.execute("SELECT student, COUNT(*) FROM gradings GROUP BY student").fetchall())
    assert per_student == {"ana": 1, "bob": 2, "carl": 1, "dora": 1, "emil": 1, "fay": 1, "gus": 1}
    assert db.execute("SELECT COUNT(*) FROM submissions WHERE student = 'bob'").fetchone()[0] == 2
    forced = _batch(subs2, out2, "--config", config, "--jobs", "2", "--force")
    assert "graded 7, unchanged 0" in forced.stdout
    # a different course config is a different grading: everything is graded again
    (tmp_path / "other.toml").write_text(COURSE.replace('"losses.softmax" = 4', '"losses.softmax" = 3'))
    other = _batch(subs2, out2, "--config", str(tmp_path / "other.toml"), "--jobs", "2")
    assert "graded 7, unchanged 0" in other.stdout
    assert _grades(out2)["ana"]["max_score"] == str(MAX_SCORE - 1)
    # a student whose new hand-in cannot be used: 0, the reason, and no stale feedback
    (subs2 / "gus.py").unlink()
    (subs2 / "gus").mkdir()
    broken = _batch(subs2, out2, "--config", str(tmp_path / "other.toml"), "--jobs", "1")
    assert "could not use 4" in broken.stdout and "gus (gus): empty folder" in broken.stdout
    assert (_grades(out2)["gus"]["status"], _grades(out2)["gus"]["total"]) == ("unusable", "0")
    assert not (out2 / "feedback" / "gus").exists()


def test_override_keeps_the_auto_score_apart(graded, tmp_path):
    _, _, out, _ = graded
    out2 = tmp_path / "out"
    shutil.copytree(out, out2)
    auto = float(_grades(out2)["bob"]["losses.softmax"])
    result = run_grade(
        "override", "bob", "losses.softmax", "4", "--why", "overflow only on huge inputs", "--out", str(out2)
    )
    assert result.returncode == 0, result.stderr
    row = _grades(out2)["bob"]
    assert (row["losses.softmax"], row["overridden"]) == ("4", "losses.softmax")
    assert float(row["total"]) == 4 + 2 + 3
    db = _db(out2)
    kept = db.execute(
        "SELECT e.score FROM exercise_results e JOIN students s ON s.current_submission = e.submission "
        "WHERE s.id = 'bob' AND e.exercise = 'losses.softmax'"
    ).fetchone()[0]
    assert round(kept, 2) == auto
    why = db.execute("SELECT why FROM overrides").fetchone()[0]
    assert why == "overflow only on huge inputs"
    bad = run_grade("override", "bob", "losses.sofmax", "1", "--why", "x", "--out", str(out2))
    assert bad.returncode == 2 and "did you mean 'losses.softmax'" in bad.stderr
    cleared = run_grade(
        "override", "bob", "losses.softmax", "--clear", "--why", "back to auto", "--out", str(out2)
    )
    assert cleared.returncode == 0, cleared.stderr
    assert _grades(out2)["bob"]["overridden"] == ""


def test_feedback_can_be_rendered_again_from_the_gradebook(graded, tmp_path):
    _, _, out, _ = graded
    out2 = tmp_path / "out"
    shutil.copytree(out, out2)
    result = run_grade("batch", "--out", str(out2), "--feedback-only", "--feedback", "html,terminal")
    assert result.returncode == 0, result.stderr
    assert "wrote feedback for 7 students" in result.stdout
    assert "<html" in (out2 / "feedback" / "bob" / "report.html").read_text().lower()
    assert (out2 / "feedback" / "bob" / "report.txt").is_file()
    (out2 / "grades.csv").unlink()
    exported = run_grade("batch", "--out", str(out2), "--export-only")
    assert exported.returncode == 0 and (out2 / "grades.csv").is_file()


def test_nbgrader_layout_with_late_hand_ins(tmp_path):
    course = tmp_path / "course"
    for student, stamp in (
        ("ana", "2026-12-01 20:00:00.000000 UTC"),
        ("bob", "2026-12-02 09:30:00.000000 UTC"),
    ):
        folder = course / "submitted" / student / "ps5"
        folder.mkdir(parents=True)
        shutil.copy(ZOO / "notebook_all.ipynb", folder / "ps5.ipynb")
        (folder / "timestamp.txt").write_text(stamp)
    (tmp_path / "course.toml").write_text(COURSE)
    out = tmp_path / "out"
    result = _batch(
        course, out, "--config", str(tmp_path / "course.toml"), "--jobs", "1", "--progress", "none"
    )
    assert result.returncode == 0, result.stderr
    rows = _grades(out)
    assert (rows["ana"]["late"], rows["bob"]["late"]) == ("no", "yes")
    assert rows["bob"]["submitted_at"].startswith("2026-12-02T09:30:00")
    assert rows["ana"]["status"] == "passed"


def test_refuses_to_run_without_the_sandbox(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(ZOO / "all_correct.py", subs / "ana.py")
    (tmp_path / "course.toml").write_text(
        '[grading]\nisolation = "minimal"\nexercises = ["regex_labels.is_cat"]\n'
    )
    out = tmp_path / "out"
    refused = _batch(subs, out, "--config", str(tmp_path / "course.toml"), "--jobs", "1")
    assert refused.returncode == 2
    assert "Refusing to run" in refused.stderr and "--unsafe-no-sandbox" in refused.stderr
    assert not (out / "grades.csv").exists()
    db = _db(out)
    assert db.execute("SELECT COUNT(*) FROM gradings").fetchone()[0] == 0
    allowed = _batch(
        subs, out, "--config", str(tmp_path / "course.toml"), "--jobs", "1", "--unsafe-no-sandbox"
    )
    assert allowed.returncode == 0, allowed.stderr
    assert _grades(out)["ana"]["status"] == "passed"
    assert db.execute("SELECT unsafe FROM runs ORDER BY id DESC").fetchone()[0] == 1


def test_usage_errors(tmp_path):
    missing = run_grade("batch", str(tmp_path / "nothing"), "--out", str(tmp_path / "out"))
    assert missing.returncode == 2 and "No such folder" in missing.stderr
    bad = run_grade("batch", str(tmp_path), "--out", str(tmp_path / "out"), "--feedback", "pdf")
    assert bad.returncode == 2 and "Unknown feedback format 'pdf'" in bad.stderr
    unknown = run_grade("batch", str(tmp_path), "--out", str(tmp_path / "out"), "--only", "losses.sofmax")
    assert unknown.returncode == 2 and "did you mean" in unknown.stderr
    no_book = run_grade(
        "override", "ana", "losses.softmax", "1", "--why", "x", "--out", str(tmp_path / "none")
    )
    assert no_book.returncode == 2 and "No gradebook" in no_book.stderr


def test_dask_local_cluster_gives_the_same_grades(graded, tmp_path):
    pytest.importorskip("distributed")
    root, subs, out, _ = graded
    out2 = tmp_path / "out"
    result = _batch(subs, out2, "--config", str(root / "course.toml"), "--scheduler", "local", "--jobs", "2")
    assert result.returncode == 0, result.stderr
    assert "graded 7, unchanged 0, could not use 3" in result.stdout
    local, dask = _grades(out), _grades(out2)
    for rows in (local, dask):
        for row in rows.values():
            row.pop("submitted_at")
    assert dask == local
    executor = _db(out2).execute("SELECT executor FROM runs").fetchone()[0]
    assert executor == "dask:local"


class _FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_plain_lines_otherwise():
    plain = io.StringIO()
    p = Progress(3, stream=plain)
    p.skipped()
    p.graded_one("ana", "9/9 passed")
    p.graded_one("bob", "5/9 partial")
    p.close()
    lines = plain.getvalue().splitlines()
    assert lines[0].startswith("[2/3] ana: 9/9 passed") and lines[1].startswith("[3/3] bob: 5/9 partial")
    terminal = _FakeTerminal()
    bar = Progress(3, stream=terminal)
    assert bar.mode == "bar"
    bar.graded_one("ana", "9/9 passed")
    bar.close()
    assert "1/3" in terminal.getvalue() and "ETA" in terminal.getvalue()


def test_a_bug_in_the_grader_is_one_line_and_exit_code_3(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from grader.batch import cli, run

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(run, "run_batch", broken)
    result = CliRunner().invoke(cli.batch, [str(tmp_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 3
    assert "internal error: RuntimeError: boom" in result.output
    assert "Traceback" in (tmp_path / "out" / "batch.log").read_text()


def test_one_batch_at_a_time_per_output_folder(tmp_path):
    import fcntl

    out = tmp_path / "out"
    out.mkdir()
    with (out / ".batch.lock").open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write(str(os.getpid()))
        held.flush()
        second = _batch(tmp_path, out)
    assert second.returncode == 2
    assert f"Another `grade batch` (pid {os.getpid()}) is writing to" in second.stderr


PAINTER_CHECK = """
import os, signal, sys
from grader.batch.classreport import Painter, draw
plots = {
    "histogram": [[1.0, 2.5, 28.0, 14.0, 14.0], 28.0],
    "status_plot": [{"id": "losses.softmax", "counts": {"passed": 3, "failed": 1, "error": 1}}],
}
painter = Painter.start()
assert painter is not None, "no helper"
if sys.argv[1] == "draws":
    drawn = painter.draw(plots)
    assert drawn is not None and drawn == draw(plots), "the helper drew something else"
    assert drawn["histogram"].startswith("data:image/png;base64,")
    # asked for now, collected later (the batch's queries run meanwhile): the same plots
    assert painter.send(plots) and painter.receive() == drawn
    with open(f"/proc/{painter.pid}/task/{painter.pid}/children") as f:
        assert f.read() == "", "the copy that drew the status plot was not reaped"
    assert painter.draw({"histogram": None, "status_plot": None}) == {"histogram": None, "status_plot": None}
else:  # the helper died: the caller draws
    os.kill(painter.pid, signal.SIGKILL)
    assert painter.draw(plots) is None
    here = draw(plots, painter)
    assert here["histogram"] and here["status_plot"] and here == draw(plots)
painter.close()
try:
    os.waitpid(painter.pid, os.WNOHANG)
    raise AssertionError("the helper was not reaped")
except ChildProcessError:
    pass
print("ok")
"""


@pytest.mark.parametrize("case", ["draws", "died"])
def test_the_class_report_helper_draws_what_the_batch_would_draw_itself(case):
    """In a fresh interpreter, as in `grade batch` (this test process may run threads: no fork here)."""
    result = run_python(PAINTER_CHECK, case, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_the_class_size_guess_before_discovery(tmp_path):
    """Whether to warm huge pages for the fork-servers is decided before discovery, from a count
    of the submissions folder's entries (or of its nbgrader ``submitted/``), stopping at ``n``."""
    from grader.batch.run import _at_least

    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(5):
        (flat / f"s{i}.py").write_text("")
    assert _at_least(flat, 5) and not _at_least(flat, 6)
    course = tmp_path / "course"
    for i in range(3):
        (course / "submitted" / f"s{i}" / "ps1").mkdir(parents=True)
    assert _at_least(course, 3) and not _at_least(course, 4)
    assert not _at_least(tmp_path / "missing", 1)
    assert not _at_least(flat / "s0.py", 1)  # a file, not a folder
