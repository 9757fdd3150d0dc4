"""Kill a batch of 40 mixed submissions with SIGKILL half way, run it again: every student ends up
with exactly one result, the right one, and nothing was graded twice."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from conftest import GRADE, ROOT, ZOO

DATA = ROOT / "tests" / "batch_data"
COURSE = """
[grading]
hidden_seed = 24680
timeout = 2
submission_timeout = 30
"""
MUTANTS = [
    "softmax_no_max_subtraction",
    "log_softmax_naive",
    "nll_missing_minus",
    "ce_sum_not_mean",
    "regex_unescaped_dot",
    "is_cat_inverted",
    "resize_squish",
    "affine_wrong_order",
    "most_confused_ascending",
    "lr_groups_off_by_one",
]


def _make_class(subs: Path) -> dict[str, tuple[str, str]]:
    """40 submissions; student -> (kind, detail)."""
    correct = (ZOO / "all_correct.py").read_text()
    kinds: dict[str, tuple[str, str]] = {}

    def write(student: str, text: str, kind: str, detail: str = "") -> None:
        (subs / f"{student}.py").write_text(f"# {student}\n" + text)
        kinds[student] = (kind, detail)

    subs.mkdir(parents=True)
    for i in range(8):
        write(f"correct{i}", correct, "correct")
    for name in MUTANTS:
        write(f"mutant_{name}", correct + "\n\n" + (ZOO / f"{name}.py").read_text(), "mutant", name)
    for i in range(5):
        shutil.copytree(ROOT / "exercises", subs / f"stub{i}" / "exercises")
        kinds[f"stub{i}"] = ("stub", "")
    for i in range(3):
        write(f"syntax{i}", (ZOO / "syntax_error.py").read_text(), "syntax")
        write(f"loop{i}", correct + "\n\n" + (ZOO / "infinite_loop.py").read_text(), "loop")
        write(f"crash{i}", correct + "\n\n" + (ZOO / "crash_segfault.py").read_text(), "crash")
        write(f"hog{i}", correct + "\n\n" + (DATA / "memory_hog.py").read_text(), "hog")
    for i in range(5):
        shutil.copy(ZOO / "notebook_all.ipynb", subs / f"notebook{i}.ipynb")
        kinds[f"notebook{i}"] = ("notebook", "")
    assert len(kinds) == 40
    return kinds


def _children(pid: int) -> set[int]:
    """Every descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _count(db_path: Path) -> int:
    if not db_path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT COUNT(*) FROM gradings").fetchone()[0]
        finally:
            db.close()
    except sqlite3.OperationalError:
        return 0


def test_sigkill_half_way_then_rerun_grades_each_student_exactly_once(tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "out"
    kinds = _make_class(subs)
    (tmp_path / "course.toml").write_text(COURSE)
    cmd = [
        GRADE,
        "batch",
        str(subs),
        "--out",
        str(out),
        "--config",
        str(tmp_path / "course.toml"),
        "--jobs",
        "2",
    ]
    env = {**os.environ, "NO_COLOR": "1"}
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.monotonic() + 300
    try:
        while _count(out / "gradebook.sqlite") < 8:
            assert first.poll() is None, "the batch ended before it could be killed half way"
            assert time.monotonic() < deadline, "no results within 5 minutes"
            time.sleep(0.05)
        family = _children(first.pid)
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
    graded_before = _count(out / "gradebook.sqlite")
    assert 8 <= graded_before < 40, graded_before
    assert family, "the batch had grading processes"
    # the grading processes, their fork-servers and workers all go away with the batch
    end = time.monotonic() + 20
    while any(_alive(p) for p in family) and time.monotonic() < end:
        time.sleep(0.1)
    assert not [p for p in family if _alive(p)]

    second = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert second.returncode == 0, second.stderr
    assert f"graded {40 - graded_before}, unchanged {graded_before}" in second.stdout

    db = sqlite3.connect(out / "gradebook.sqlite")
    db.row_factory = sqlite3.Row
    per_student = dict(db.execute("SELECT student, COUNT(*) FROM gradings GROUP BY student").fetchall())
    assert per_student == dict.fromkeys(kinds, 1), "every student graded exactly once"
    assert db.execute("SELECT COUNT(*) FROM submissions").fetchone()[0] == 40
    runs = [r["status"] for r in db.execute("SELECT status FROM runs ORDER BY id")]
    assert runs == ["running", "finished"]  # the killed run never got to say anything

    rows = {
        r["id"]: r
        for r in db.execute(
            "SELECT st.id, sb.status, sb.flags, sb.score, sb.max_score, sb.report FROM students st "
            "JOIN submissions sb ON sb.id = st.current_submission"
        )
    }
    assert set(rows) == set(kinds)
    for student, (kind, detail) in kinds.items():
        row = rows[student]
        report = json.loads(row["report"])
        assert report["hidden"], student
        if kind in ("correct", "notebook"):
            assert row["status"] == "passed" and row["score"] == row["max_score"], student
        elif kind == "mutant":
            assert row["status"] == "partial" and 0 < row["score"] < row["max_score"], student
            fired = {m["name"] for e in report["exercises"] for m in e["misconceptions"]}
            assert detail.replace("_", "-") in fired, (student, fired)
        elif kind == "stub":
            assert row["status"] == "not_attempted" and row["score"] == 0, student
        elif kind == "syntax":
            assert row["status"] == "input_error" and row["score"] == 0, student
        elif kind == "loop":
            assert row["status"] == "timeout" and 0 < row["score"] < row["max_score"], student
        elif kind == "crash":
            assert row["status"] == "crashed" and 0 < row["score"] < row["max_score"], student
        elif kind == "hog":
            assert row["status"] == "memory" and 0 < row["score"] < row["max_score"], student
        # whatever went wrong in softmax cost only softmax
        if kind in ("loop", "crash", "hog"):
            softmax = next(e for e in report["exercises"] if e["id"] == "losses.softmax")
            assert softmax["score"] == 0
            assert row["score"] == row["max_score"] - softmax["max_score"], student
        assert (out / "feedback" / student / "report.md").is_file(), student
    assert "crashed" in (out / "class-report.html").read_text()
