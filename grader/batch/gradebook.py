"""The gradebook: one SQLite file (``DIR/gradebook.sqlite``), written by one writer, one transaction
per graded submission.

Tables (``sqlite3 DIR/gradebook.sqlite .schema`` shows them):

* ``students``: id, name, email, the current submission (the latest one discovered).
* ``submissions``: one row per (student, content hash): where it came from, when it was handed in
  and whether that was late, and its current auto-grading: when, grader version, config
  fingerprint, seed, status, score, seconds and the full Report JSON.
* ``exercise_results``, ``case_results``, ``misconceptions``: the Report, queryable.
* ``gradings``: append-only history, one row per grading ever done (how a re-run proves that
  nothing was graded twice).
* ``overrides``: manual points per (student, exercise) with the reason, append-only; the latest
  one counts, ``points`` NULL clears it. Kept apart from the auto score: totals are derived
  (view ``effective_scores``).
* ``runs`` and ``problems``: each ``grade batch`` run and what it could not use.

Durability: WAL journal with ``synchronous=FULL``, so a committed result survives ``kill -9`` and
power loss; a submission still being graded is simply graded again by the next run.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from grader.errors import UsageError

SCHEMA_VERSION = 1
FILENAME = "gradebook.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    source TEXT NOT NULL,
    grader_version TEXT NOT NULL,
    config TEXT NOT NULL,
    executor TEXT NOT NULL,
    jobs INTEGER,
    unsafe INTEGER NOT NULL DEFAULT 0,
    isolation TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'running',
    discovered INTEGER NOT NULL DEFAULT 0,
    graded INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    unusable INTEGER NOT NULL DEFAULT 0,
    parent_peak_rss_kb INTEGER,
    parent_cpu_seconds REAL
);
CREATE TABLE IF NOT EXISTS students (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    current_submission INTEGER REFERENCES submissions(id),
    problem TEXT,
    last_run INTEGER REFERENCES runs(id)
);
CREATE TABLE IF NOT EXISTS submissions (
    id INTEGER PRIMARY KEY,
    student TEXT NOT NULL REFERENCES students(id),
    content_hash TEXT NOT NULL,
    layout TEXT NOT NULL,
    path TEXT NOT NULL,
    submitted_at TEXT,
    late INTEGER,
    first_run INTEGER REFERENCES runs(id),
    graded_at TEXT,
    grader_version TEXT,
    config TEXT,
    seed INTEGER,
    hidden INTEGER,
    status TEXT,
    flags TEXT,
    score REAL,
    max_score REAL,
    seconds REAL,
    report TEXT,
    UNIQUE (student, content_hash)
);
CREATE TABLE IF NOT EXISTS gradings (
    id INTEGER PRIMARY KEY,
    run INTEGER NOT NULL REFERENCES runs(id),
    submission INTEGER NOT NULL REFERENCES submissions(id),
    student TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    graded_at TEXT NOT NULL,
    grader_version TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    score REAL NOT NULL,
    seconds REAL
);
CREATE TABLE IF NOT EXISTS exercise_results (
    submission INTEGER NOT NULL REFERENCES submissions(id),
    exercise TEXT NOT NULL,
    position INTEGER NOT NULL,
    status TEXT NOT NULL,
    score REAL NOT NULL,
    max_score REAL NOT NULL,
    passed_cases INTEGER NOT NULL,
    total_cases INTEGER NOT NULL,
    misconception TEXT,
    message TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (submission, exercise)
);
CREATE TABLE IF NOT EXISTS case_results (
    submission INTEGER NOT NULL REFERENCES submissions(id),
    exercise TEXT NOT NULL,
    case_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    label TEXT NOT NULL,
    status TEXT NOT NULL,
    hidden INTEGER NOT NULL,
    misconception TEXT,
    PRIMARY KEY (submission, exercise, case_id)
);
CREATE TABLE IF NOT EXISTS misconceptions (
    submission INTEGER NOT NULL REFERENCES submissions(id),
    exercise TEXT NOT NULL,
    name TEXT NOT NULL,
    title TEXT NOT NULL,
    PRIMARY KEY (submission, exercise, name)
);
CREATE TABLE IF NOT EXISTS overrides (
    id INTEGER PRIMARY KEY,
    student TEXT NOT NULL REFERENCES students(id),
    exercise TEXT NOT NULL,
    points REAL,
    why TEXT NOT NULL,
    created_at TEXT NOT NULL,
    submission INTEGER REFERENCES submissions(id)
);
CREATE TABLE IF NOT EXISTS problems (
    run INTEGER NOT NULL REFERENCES runs(id),
    student TEXT,
    path TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS gradings_student ON gradings (student);
CREATE INDEX IF NOT EXISTS overrides_key ON overrides (student, exercise, id);
CREATE VIEW IF NOT EXISTS current_overrides AS
    SELECT o.student, o.exercise, o.points, o.why, o.created_at
    FROM overrides o
    WHERE o.id = (SELECT MAX(id) FROM overrides i WHERE i.student = o.student AND i.exercise = o.exercise)
      AND o.points IS NOT NULL;
CREATE VIEW IF NOT EXISTS effective_scores AS
    SELECT st.id AS student, e.exercise, e.position, e.score AS auto_score, e.max_score,
           o.points AS override, COALESCE(o.points, e.score) AS points
    FROM students st
    JOIN exercise_results e ON e.submission = st.current_submission
    LEFT JOIN current_overrides o ON o.student = st.id AND o.exercise = e.exercise;
"""

# Submission-level statuses, most serious first (a submission shows the first that applies).
STATUSES = (
    "grader_error",  # the grader itself failed on it
    "forbidden",  # called the op it was asked to implement
    "crashed",  # the student's code ended the worker (segfault, os._exit, ...)
    "memory",  # ran out of its memory limit
    "timeout",  # an infinite (or very slow) loop
    "input_error",  # syntax error, import error
    "not_attempted",  # still the stubs
    "passed",  # every exercise passed
    "partial",  # some points
)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def classify(report: Mapping[str, Any]) -> tuple[str, list[str]]:
    """A submission's status and every flag that applies (see STATUSES), from its Report dict."""
    flags: set[str] = set()
    exercises = report.get("exercises", [])
    if report.get("crash"):
        flags.add("grader_error")
    if report.get("errors"):
        flags.add("input_error")
    for e in exercises:
        status = e.get("status")
        if status == "forbidden":
            flags.add("forbidden")
        elif status == "timeout":
            flags.add("timeout")
        texts = [e.get("message", "")] + [c.get("message", "") for c in e.get("cases", [])]
        for text in texts:
            if "ended the worker" in text:
                flags.add("crashed")
            if "MemoryError" in text or "can't allocate memory" in text or "out of memory" in text:
                flags.add("memory")
    if exercises:
        if all(e.get("status") == "not_attempted" for e in exercises):
            flags.add("not_attempted")
        elif all(e.get("status") == "passed" for e in exercises):
            flags.add("passed")
        else:
            flags.add("partial")
    ordered = [s for s in STATUSES if s in flags]
    return ordered[0], ordered


@dataclass(frozen=True)
class Existing:
    """What the gradebook knows about one (student, content hash)."""

    submission: int
    graded: bool  #: graded with this grader version and config


class Gradebook:
    """The gradebook of one output folder. Only the batch parent writes results."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise UsageError(f"No gradebook at {self.path} (run `grade batch SUBMISSIONS --out DIR` first)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA busy_timeout=30000")
        self.db.executescript(SCHEMA)  # idempotent (IF NOT EXISTS); executescript commits by itself
        with self.transaction():
            self.db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        version = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        if int(version) != SCHEMA_VERSION:
            raise UsageError(
                f"{self.path} has gradebook schema {version}; this grader reads {SCHEMA_VERSION}"
            )

    # -- plumbing

    def transaction(self) -> _Transaction:
        return _Transaction(self.db)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Gradebook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- settings kept with the gradebook

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def meta(self, key: str, default: str = "") -> str:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row is not None else default

    # -- runs

    def start_run(
        self, *, source: str, grader_version: str, config: str, executor: str, jobs: int, unsafe: bool
    ) -> int:
        with self.transaction():
            cur = self.db.execute(
                "INSERT INTO runs (started_at, source, grader_version, config, executor, jobs, unsafe) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (now(), source, grader_version, config, executor, jobs, int(unsafe)),
            )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def finish_run(self, run: int, *, status: str, counts: Mapping[str, int], isolation: str = "") -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE runs SET finished_at = ?, status = ?, discovered = ?, graded = ?, skipped = ?, "
                "unusable = ?, isolation = ? WHERE id = ?",
                (
                    now(),
                    status,
                    counts.get("discovered", 0),
                    counts.get("graded", 0),
                    counts.get("skipped", 0),
                    counts.get("unusable", 0),
                    isolation,
                    run,
                ),
            )

    def run_stats(self, run: int, *, peak_rss_kb: int, cpu_seconds: float) -> None:
        """The batch parent's own peak RSS and CPU time (the benchmarks read them)."""
        with self.transaction():
            self.db.execute(
                "UPDATE runs SET parent_peak_rss_kb = ?, parent_cpu_seconds = ? WHERE id = ?",
                (peak_rss_kb, cpu_seconds, run),
            )

    # -- discovery

    def note_problem(self, run: int, *, student: str | None, path: str, reason: str) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT INTO problems (run, student, path, reason) VALUES (?, ?, ?, ?)",
                (run, student, path, reason),
            )
            if student is not None:
                self.db.execute(
                    "INSERT INTO students (id, problem, last_run) VALUES (?, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET problem = excluded.problem, last_run = excluded.last_run, "
                    "current_submission = NULL",
                    (student, reason, run),
                )

    def lookup(self, student: str, content_hash: str, grader_version: str, config: str) -> Existing | None:
        """Is this content already graded with this grader version and config (a grader error: no)?"""
        row = self.db.execute(
            "SELECT id, graded_at IS NOT NULL AND grader_version = ? AND config = ? "
            "AND status != 'grader_error' AS done "
            "FROM submissions WHERE student = ? AND content_hash = ?",
            (grader_version, config, student, content_hash),
        ).fetchone()
        return Existing(row["id"], bool(row["done"])) if row is not None else None

    def mark_current(
        self, run: int, *, student: str, submission: int, name: str = "", email: str = ""
    ) -> None:
        """An unchanged submission seen again: it stays (or becomes again) the student's current one."""
        with self.transaction():
            self._upsert_student(run, student, name, email, submission)

    def _upsert_student(self, run: int, student: str, name: str, email: str, submission: int | None) -> None:
        self.db.execute(
            "INSERT INTO students (id, name, email, current_submission, problem, last_run) "
            "VALUES (?, ?, ?, ?, NULL, ?) ON CONFLICT (id) DO UPDATE SET "
            "name = CASE WHEN excluded.name != '' THEN excluded.name ELSE students.name END, "
            "email = CASE WHEN excluded.email != '' THEN excluded.email ELSE students.email END, "
            "current_submission = excluded.current_submission, problem = NULL, last_run = excluded.last_run",
            (student, name, email, submission, run),
        )

    # -- results

    def record(
        self,
        run: int,
        *,
        student: str,
        name: str,
        email: str,
        content_hash: str,
        layout: str,
        path: str,
        submitted_at: str | None,
        late: bool | None,
        report: Mapping[str, Any],
        report_json: str,
        config: str,
        seconds: float | None,
    ) -> int:
        """Store one graded submission (and its history row) in one transaction; its submission id."""
        status, flags = classify(report)
        graded_at = now()
        with self.transaction():
            self._upsert_student(run, student, name, email, None)
            self.db.execute(
                "INSERT INTO submissions (student, content_hash, layout, path, submitted_at, late, first_run) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (student, content_hash) DO UPDATE SET "
                "layout = excluded.layout, path = excluded.path, submitted_at = excluded.submitted_at, "
                "late = excluded.late",
                (student, content_hash, layout, path, submitted_at, None if late is None else int(late), run),
            )
            sid = self.db.execute(
                "SELECT id FROM submissions WHERE student = ? AND content_hash = ?", (student, content_hash)
            ).fetchone()[0]
            self.db.execute(
                "UPDATE submissions SET graded_at = ?, grader_version = ?, config = ?, seed = ?, hidden = ?, "
                "status = ?, flags = ?, score = ?, max_score = ?, seconds = ?, report = ? WHERE id = ?",
                (
                    graded_at,
                    report["grader_version"],
                    config,
                    report["seed"],
                    int(bool(report.get("hidden"))),
                    status,
                    ",".join(flags),
                    report["score"],
                    report["max_score"],
                    seconds,
                    report_json,
                    sid,
                ),
            )
            for table in ("exercise_results", "case_results", "misconceptions"):
                self.db.execute(f"DELETE FROM {table} WHERE submission = ?", (sid,))
            exercises = report.get("exercises", [])
            self.db.executemany(
                "INSERT INTO exercise_results (submission, exercise, position, status, score, max_score, "
                "passed_cases, total_cases, misconception, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        sid,
                        e["id"],
                        i,
                        e["status"],
                        e["score"],
                        e["max_score"],
                        e.get("passed_cases", 0),
                        e.get("total_cases", 0),
                        e.get("misconception"),
                        e.get("message", "")[:500],
                    )
                    for i, e in enumerate(exercises)
                ],
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO case_results (submission, exercise, case_id, position, label, status, "
                "hidden, misconception) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        sid,
                        e["id"],
                        c["id"],
                        i,
                        c["label"],
                        c["status"],
                        int(bool(c.get("hidden"))),
                        c.get("misconception"),
                    )
                    for e in exercises
                    for i, c in enumerate(e.get("cases", []))
                ],
            )
            self.db.executemany(
                "INSERT OR IGNORE INTO misconceptions (submission, exercise, name, title) VALUES (?, ?, ?, ?)",
                [
                    (sid, e["id"], m["name"], m["title"])
                    for e in exercises
                    for m in e.get("misconceptions", [])
                ],
            )
            self.db.execute(
                "INSERT INTO gradings (run, submission, student, content_hash, graded_at, grader_version, "
                "config, status, score, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run,
                    sid,
                    student,
                    content_hash,
                    graded_at,
                    report["grader_version"],
                    config,
                    status,
                    report["score"],
                    seconds,
                ),
            )
            self.db.execute("UPDATE students SET current_submission = ? WHERE id = ?", (sid, student))
        return int(sid)

    # -- overrides

    def override(self, student: str, exercise: str, points: float | None, why: str) -> dict[str, Any]:
        """Set (or, with ``points=None``, clear) a manual score; returns the exercise's auto result."""
        row = self.db.execute("SELECT current_submission FROM students WHERE id = ?", (student,)).fetchone()
        if row is None:
            import difflib

            known = [r[0] for r in self.db.execute("SELECT id FROM students")]
            close = difflib.get_close_matches(student, known, n=1)
            hint = f" — did you mean '{close[0]}'?" if close else ""
            raise UsageError(f"Unknown student '{student}' in {self.path}{hint}")
        submission = row[0]
        if submission is None:
            raise UsageError(
                f"'{student}' has no graded submission to override (see problems in the gradebook)"
            )
        ex = self.db.execute(
            "SELECT exercise, score, max_score FROM exercise_results WHERE submission = ? AND exercise = ?",
            (submission, exercise),
        ).fetchone()
        if ex is None:
            import difflib

            known = [
                r[0]
                for r in self.db.execute(
                    "SELECT exercise FROM exercise_results WHERE submission = ?", (submission,)
                )
            ]
            close = difflib.get_close_matches(exercise, known, n=1)
            hint = f" — did you mean '{close[0]}'?" if close else ""
            raise UsageError(f"Unknown exercise '{exercise}' for {student}{hint}")
        if points is not None and not 0 <= points <= ex["max_score"]:
            raise UsageError(f"{exercise} is worth {ex['max_score']:g} points: give 0 to {ex['max_score']:g}")
        if not why.strip():
            raise UsageError("Say why with --why (it is kept with the override)")
        with self.transaction():
            self.db.execute(
                "INSERT INTO overrides (student, exercise, points, why, created_at, submission) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (student, exercise, points, why.strip(), now(), submission),
            )
        return dict(ex)

    # -- reading

    def exercises(self) -> list[tuple[str, float]]:
        """Exercise ids (in report order) and their points, over every current submission."""
        rows = self.db.execute(
            "SELECT e.exercise, MAX(e.max_score) AS max_score, MIN(e.position) AS pos FROM exercise_results e "
            "JOIN students s ON s.current_submission = e.submission GROUP BY e.exercise ORDER BY pos, e.exercise"
        ).fetchall()
        return [(r["exercise"], r["max_score"]) for r in rows]

    def students(self) -> Iterator[sqlite3.Row]:
        """Every student with their current submission (or the problem that stopped it), by id."""
        yield from self.db.execute(
            "SELECT st.id AS student, st.name, st.email, st.problem, sb.id AS submission, sb.status, sb.flags, "
            "sb.score, sb.max_score, sb.late, sb.submitted_at, sb.seconds, sb.graded_at, sb.layout, sb.path "
            "FROM students st LEFT JOIN submissions sb ON sb.id = st.current_submission ORDER BY st.id"
        )

    def effective(self, student: str) -> dict[str, tuple[float, float | None]]:
        """exercise -> (points counted, override or None) for a student's current submission."""
        return {
            r["exercise"]: (r["points"], r["override"])
            for r in self.db.execute(
                "SELECT exercise, points, override FROM effective_scores WHERE student = ?", (student,)
            )
        }

    def report_json(self, submission: int) -> str | None:
        row = self.db.execute("SELECT report FROM submissions WHERE id = ?", (submission,)).fetchone()
        return row[0] if row is not None else None

    def current_reports(self) -> Iterator[tuple[str, str]]:
        """(student, report JSON) for every current graded submission, streamed."""
        cur = self.db.execute(
            "SELECT st.id, sb.report FROM students st JOIN submissions sb ON sb.id = st.current_submission "
            "WHERE sb.report IS NOT NULL ORDER BY st.id"
        )
        yield from ((r[0], r[1]) for r in cur)

    def gradings_per_student(self) -> dict[str, int]:
        return {
            r[0]: r[1] for r in self.db.execute("SELECT student, COUNT(*) FROM gradings GROUP BY student")
        }

    def problems(self, run: int | None = None) -> list[sqlite3.Row]:
        if run is None:
            row = self.db.execute("SELECT MAX(id) FROM runs").fetchone()
            run = row[0] if row else None
        return list(self.db.execute("SELECT student, path, reason FROM problems WHERE run = ?", (run,)))


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")


def dumps(report: Mapping[str, Any]) -> str:
    return json.dumps(report, separators=(",", ":"), ensure_ascii=False)
