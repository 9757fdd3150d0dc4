"""The class report (``DIR/class-report.html``): one self-contained page about the whole class.

Score histogram, per-exercise and per-case pass rates, the most frequent misconceptions (with
counts and example students), the submissions that timed out, crashed, ran out of memory, called
forbidden ops or could not be read, and the slowest submissions. Everything is aggregated in SQL
from the gradebook (nothing per student is held in memory but the totals); plots are matplotlib
PNGs embedded as data URIs, drawn by a helper process started with the batch (:class:`Painter`)
where it can; the template (``templates/class-report.html.j2``) autoescapes.
"""

from __future__ import annotations

import base64
import io
import os
import statistics
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from grader.memory import warm_huge_pages

from .gradebook import Gradebook

TEMPLATE = "class-report.html.j2"
LIST_LIMIT = 50  #: rows per problem list (the rest is counted)
STATUS_COLORS = {
    "passed": "#2e7d32",
    "failed": "#f9a825",
    "error": "#c62828",
    "timeout": "#6a1b9a",
    "forbidden": "#37474f",
    "not_attempted": "#b0bec5",
    "skipped": "#eceff1",
}
PROBLEM_STATUSES = ("grader_error", "forbidden", "crashed", "memory", "timeout", "input_error")


# ----------------------------------------------------------------------------- plots


def _png(fig: Any) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def histogram(totals: list[float], max_score: float) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 2.8), layout="constrained")
    ax = fig.add_subplot()
    top = max(max_score, max(totals, default=0.0), 1.0)
    bins = min(40, max(10, int(top)))
    ax.hist(totals, bins=bins, range=(0, top), color="#1565c0", edgecolor="white")
    ax.set_xlabel(f"total score (of {top:g})")
    ax.set_ylabel("students")
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def status_bars(exercises: list[dict[str, Any]]) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 0.4 * len(exercises) + 1.2), layout="constrained")
    ax = fig.add_subplot()
    names = [e["id"] for e in exercises][::-1]
    left = [0.0] * len(names)
    for status, color in STATUS_COLORS.items():
        widths = [e["counts"].get(status, 0) for e in exercises][::-1]
        if any(widths):
            ax.barh(names, widths, left=left, color=color, label=status.replace("_", " "))
            left = [a + b for a, b in zip(left, widths)]
    ax.set_xlabel("students")
    ax.legend(ncol=4, fontsize="small", loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def _draw_here(plots: dict[str, Any]) -> dict[str, str | None]:
    hist, bars = plots.get("histogram"), plots.get("status_plot")
    return {
        "histogram": histogram(hist[0], hist[1]) if hist else None,
        "status_plot": status_bars(bars) if bars else None,
    }


def draw(plots: dict[str, Any], painter: Painter | None = None) -> dict[str, str | None]:
    """The class report's plots as data URIs: ``{"histogram": [totals, max_score] | None,
    "status_plot": exercises | None}`` in, the same keys out. By ``painter`` when it can."""
    return draw_later(plots, painter)()


def draw_later(plots: dict[str, Any], painter: Painter | None = None) -> Callable[[], dict[str, str | None]]:
    """:func:`draw`, started now and collected by calling the result: the caller works meanwhile
    while ``painter`` draws (drawn by the caller itself when the painter cannot)."""
    if painter is None or not painter.send(plots):
        return lambda: _draw_here(plots)

    def collect_drawn() -> dict[str, str | None]:
        drawn = painter.receive()
        return drawn if drawn is not None else _draw_here(plots)

    return collect_drawn


class Painter:
    """A helper process that imports matplotlib (and draws once, loading its fonts) at the start
    of a batch, while the batch parent imports torch: on two cores the two imports overlap, and
    the class report at the end of the batch no longer waits 0.3 s for matplotlib. Before that it
    warms the huge pages the fork-servers will move into (``warm_mib``, see
    :func:`grader.memory.warm_huge_pages`), on the same otherwise idle core.

    It never sees student code, only the report's aggregated numbers, as JSON over a pipe. Where
    it cannot start or answer, the plots are drawn in the caller as before.
    """

    def __init__(self, pid: int, to_child: int, from_child: int) -> None:
        self.pid = pid
        self._out = os.fdopen(to_child, "w", encoding="utf-8")
        self._in = os.fdopen(from_child, "r", encoding="utf-8")

    @classmethod
    def start(cls, warm_mib: int = 0) -> Painter | None:
        """Fork the helper (Linux, a parent with one thread); None where it cannot."""
        import sys
        import threading

        if sys.platform != "linux" or threading.active_count() != 1:
            return None
        down_r, down_w = os.pipe()
        up_r, up_w = os.pipe()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        try:
            pid = os.fork()
        except OSError:  # no process to spare: the caller draws
            for fd in (down_r, down_w, up_r, up_w):
                os.close(fd)
            return None
        if pid == 0:  # pragma: no cover - runs in the helper
            _painter_main(down_r, up_w, warm_mib)
        os.close(down_r)
        os.close(up_w)
        return cls(pid, down_w, up_r)

    def draw(self, plots: dict[str, Any], timeout: float = 60.0) -> dict[str, str | None] | None:
        """The plots drawn (see :func:`draw`); None where the helper could not."""
        return self.receive(timeout) if self.send(plots) else None

    def send(self, plots: dict[str, Any]) -> bool:
        """Ask for ``plots`` (:meth:`receive` them later); False where the helper is gone."""
        import json

        try:
            self._out.write(json.dumps(plots) + "\n")
            self._out.flush()
        except (OSError, ValueError, TypeError):
            return False
        return True

    def receive(self, timeout: float = 60.0) -> dict[str, str | None] | None:
        """The plots asked for by the last :meth:`send`; None where the helper did not draw them."""
        import json
        import select

        try:
            if not select.select([self._in], [], [], timeout)[0]:
                return None
            reply = json.loads(self._in.readline())
        except (OSError, ValueError, TypeError):
            return None
        if not isinstance(reply, dict) or set(reply) != {"histogram", "status_plot"}:
            return None
        return {k: v if isinstance(v, str) else None for k, v in reply.items()}

    def close(self) -> None:
        """Stop the helper (it keeps nothing worth waiting for) and reap it."""
        import contextlib
        import signal

        for f in (self._out, self._in):
            with contextlib.suppress(OSError):
                f.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _draw_both(plots: dict[str, Any]) -> dict[str, str | None]:  # pragma: no cover - in the helper
    """:func:`_draw_here`, the status plot drawn by a forked copy of this process meanwhile (on
    two cores the two plots take ~0.1 s instead of ~0.14 s at the end of a batch). Where no copy
    can be forked, or it fails, this process draws both."""
    import json

    hist, bars = plots.get("histogram"), plots.get("status_plot")
    if not (hist and bars):
        return _draw_here(plots)
    r, w = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return _draw_here(plots)
    if pid == 0:
        code = 1
        try:
            from .pool import set_pdeathsig

            set_pdeathsig()  # go with the helper
            os.close(r)
            with os.fdopen(w, "w", encoding="utf-8") as out:
                out.write(json.dumps(status_bars(bars)))
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    drawn = histogram(hist[0], hist[1])
    with os.fdopen(r, encoding="utf-8") as inp:
        data = inp.read()
    _, status = os.waitpid(pid, 0)
    try:
        status_plot = json.loads(data) if status == 0 else None
    except ValueError:
        status_plot = None
    return {
        "histogram": drawn,
        "status_plot": status_plot if isinstance(status_plot, str) else status_bars(bars),
    }


def _painter_main(requests: int, replies: int, warm_mib: int = 0) -> None:  # pragma: no cover - in the helper
    """The helper: huge pages warmed, matplotlib imported and warmed up, then one JSON line in,
    one out, until EOF."""
    import json

    code = 0
    try:
        from .pool import set_pdeathsig

        set_pdeathsig()  # go with the batch
        low, high = sorted((requests, replies))  # every other file of the batch is none of its business
        os.closerange(3, low)
        os.closerange(low + 1, high)
        os.closerange(high + 1, os.sysconf("SC_OPEN_MAX"))
        warm_huge_pages(warm_mib)  # first: the class report needs matplotlib only at the end
        _draw_here({"histogram": [[0.0, 1.0], 1.0], "status_plot": [{"id": "x", "counts": {"passed": 1}}]})
        with os.fdopen(requests, encoding="utf-8") as inp, os.fdopen(replies, "w", encoding="utf-8") as out:
            for line in inp:
                try:
                    reply: dict[str, Any] = _draw_both(json.loads(line))
                except Exception:  # bad data: the caller draws it itself
                    reply = {}
                out.write(json.dumps(reply) + "\n")
                out.flush()
    except BaseException:
        code = 1
    finally:
        os._exit(code)


# ----------------------------------------------------------------------------- data


def collect(
    book: Gradebook,
    *,
    title: str = "Class report",
    painter: Painter | None = None,
    meanwhile: Callable[[], object] | None = None,
) -> dict[str, Any]:
    """Everything the template shows, aggregated from the gradebook (plots by ``painter`` if given).

    The plots are asked for as soon as their numbers are known; the rest of the queries, and
    ``meanwhile`` (e.g. compiling the template), run while the painter draws.
    """
    db = book.db
    current = "JOIN students st ON st.current_submission = {alias}.submission"
    exercises_meta = book.exercises()
    max_total = sum(m for _, m in exercises_meta)
    totals = [
        float(r[0])
        for r in db.execute("SELECT SUM(points) FROM effective_scores GROUP BY student ORDER BY student")
    ]
    statuses = [
        {"status": r[0], "count": r[1]}
        for r in db.execute(
            "SELECT sb.status, COUNT(*) FROM students st JOIN submissions sb ON sb.id = st.current_submission "
            "GROUP BY sb.status ORDER BY COUNT(*) DESC"
        )
    ]
    exercises: list[dict[str, Any]] = []
    for ex_id, ex_max in exercises_meta:
        counts = {
            r[0]: r[1]
            for r in db.execute(
                f"SELECT e.status, COUNT(*) FROM exercise_results e {current.format(alias='e')} "
                "WHERE e.exercise = ? GROUP BY e.status",
                (ex_id,),
            )
        }
        n = sum(counts.values())
        mean = db.execute("SELECT AVG(points) FROM effective_scores WHERE exercise = ?", (ex_id,)).fetchone()[
            0
        ]
        top: dict[str, tuple[str, int]] = {}  # case -> its most frequent misconception
        for case_id, name, count in db.execute(
            f"SELECT c.case_id, c.misconception, COUNT(*) FROM case_results c {current.format(alias='c')} "
            "WHERE c.exercise = ? AND c.misconception IS NOT NULL GROUP BY c.case_id, c.misconception",
            (ex_id,),
        ):
            if count > top.get(case_id, ("", 0))[1] or (count == top[case_id][1] and name < top[case_id][0]):
                top[case_id] = (name, count)
        cases = []
        for r in db.execute(
            f"SELECT c.case_id, MIN(c.label) AS label, MAX(c.hidden) AS hidden, MIN(c.position) AS pos, "
            f"SUM(c.status = 'passed') AS passed, SUM(c.status != 'not_attempted') AS attempted, COUNT(*) AS n "
            f"FROM case_results c {current.format(alias='c')} WHERE c.exercise = ? "
            "GROUP BY c.case_id ORDER BY pos",
            (ex_id,),
        ):
            name, count = top.get(r["case_id"], (None, 0))
            cases.append(
                {
                    "id": r["case_id"],
                    "label": r["label"],
                    "hidden": bool(r["hidden"]),
                    "passed": r["passed"],
                    "attempted": r["attempted"],
                    "total": r["n"],
                    "rate": (r["passed"] / r["attempted"]) if r["attempted"] else None,
                    "misconception": name,
                    "misconception_count": count,
                }
            )
        attempted = n - counts.get("not_attempted", 0)
        exercises.append(
            {
                "id": ex_id,
                "max_score": ex_max,
                "students": n,
                "counts": counts,
                "passed": counts.get("passed", 0),
                "attempted": attempted,
                "pass_rate": counts.get("passed", 0) / n if n else None,
                "mean": mean if mean is not None else 0.0,
                "cases": cases,
            }
        )
    plots = draw_later(
        {
            "histogram": [totals, max_total] if totals else None,
            "status_plot": [{"id": e["id"], "counts": e["counts"]} for e in exercises] or None,
        },
        painter,
    )
    if meanwhile is not None:
        meanwhile()
    misconceptions = []
    for r in db.execute(
        f"SELECT m.exercise, m.name, MIN(m.title) AS title, COUNT(*) AS n FROM misconceptions m "
        f"{current.format(alias='m')} GROUP BY m.exercise, m.name ORDER BY n DESC, m.exercise, m.name LIMIT 15"
    ):
        examples = [
            x[0]
            for x in db.execute(
                f"SELECT st.id FROM misconceptions m {current.format(alias='m')} "
                "WHERE m.exercise = ? AND m.name = ? ORDER BY st.id LIMIT 3",
                (r["exercise"], r["name"]),
            )
        ]
        misconceptions.append(
            {
                "exercise": r["exercise"],
                "name": r["name"],
                "title": r["title"],
                "count": r["n"],
                "examples": examples,
            }
        )
    problems = []
    for status in PROBLEM_STATUSES:
        count = db.execute(
            "SELECT COUNT(*) FROM students st JOIN submissions sb ON sb.id = st.current_submission "
            "WHERE (',' || sb.flags || ',') LIKE ?",
            (f"%,{status},%",),
        ).fetchone()[0]
        if not count:
            continue
        rows = []
        for r in db.execute(
            "SELECT st.id, sb.id AS submission, sb.report IS NOT NULL AS has_report FROM students st "
            "JOIN submissions sb ON sb.id = st.current_submission WHERE (',' || sb.flags || ',') LIKE ? "
            "ORDER BY st.id LIMIT ?",
            (f"%,{status},%", LIST_LIMIT),
        ):
            rows.append({"student": r["id"], "detail": _detail(book, r["submission"], status)})
        problems.append({"status": status, "count": count, "rows": rows, "more": count - len(rows)})
    unusable = [
        {"student": r["student"] or "", "path": r["path"], "reason": r["reason"]}
        for r in db.execute(
            "SELECT student, path, reason FROM problems WHERE run = (SELECT MAX(id) FROM runs) "
            "ORDER BY student, path LIMIT ?",
            (LIST_LIMIT,),
        )
    ]
    unusable_count = db.execute(
        "SELECT COUNT(*) FROM problems WHERE run = (SELECT MAX(id) FROM runs)"
    ).fetchone()[0]
    slowest = [
        {"student": r[0], "seconds": r[1], "status": r[2]}
        for r in db.execute(
            "SELECT st.id, sb.seconds, sb.status FROM students st JOIN submissions sb ON sb.id = st.current_submission "
            "WHERE sb.seconds IS NOT NULL ORDER BY sb.seconds DESC, st.id LIMIT 10"
        )
    ]
    run = db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    overrides = db.execute("SELECT COUNT(*) FROM current_overrides").fetchone()[0]
    graded = len(totals)
    return {
        "title": title,
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "source": run["source"] if run else "",
        "grader_version": run["grader_version"] if run else "",
        "config": run["config"] if run else "",
        "isolation": run["isolation"] if run else "",
        "students": db.execute("SELECT COUNT(*) FROM students").fetchone()[0],
        "graded": graded,
        "max_score": max_total,
        "mean": statistics.fmean(totals) if totals else 0.0,
        "median": statistics.median(totals) if totals else 0.0,
        "lowest": min(totals, default=0.0),
        "highest": max(totals, default=0.0),
        "full_marks": sum(1 for t in totals if max_total and t >= max_total - 1e-9),
        "statuses": statuses,
        "exercises": exercises,
        "misconceptions": misconceptions,
        "problems": problems,
        "unusable": unusable,
        "unusable_more": unusable_count - len(unusable),
        "slowest": slowest,
        "overrides": overrides,
        **plots(),
    }


def _detail(book: Gradebook, submission: int, status: str) -> str:
    """One line saying what went wrong, from the exercise results."""
    wanted = {
        "timeout": "e.status = 'timeout'",
        "forbidden": "e.status = 'forbidden'",
        "crashed": "e.message LIKE '%ended the worker%'",
        "memory": "(e.message LIKE '%MemoryError%' OR e.message LIKE '%allocate memory%')",
        "input_error": "e.status = 'error'",
    }.get(status)
    if wanted is not None:
        row = book.db.execute(
            f"SELECT e.exercise, e.message FROM exercise_results e WHERE e.submission = ? AND {wanted} "
            "ORDER BY e.position LIMIT 1",
            (submission,),
        ).fetchone()
        if row is not None:
            return f"{row[0]}: {row[1]}"
    report = book.report_json(submission)
    if report:
        import json

        data = json.loads(report)
        if status == "grader_error" and data.get("crash"):
            return str(data["crash"])
        if data.get("errors"):
            return str(data["errors"][0])
    return ""


# ----------------------------------------------------------------------------- rendering


@cache
def _environment(extra: str | None) -> jinja2.Environment:
    from grader.render import templates_dir

    loaders: list[jinja2.BaseLoader] = []
    if extra:
        loaders.append(jinja2.FileSystemLoader(extra))
    loaders.append(jinja2.FileSystemLoader(str(templates_dir())))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["pct"] = lambda x: "–" if x is None else f"{100 * x:.0f}%"
    env.filters["pts"] = lambda x: f"{round(float(x), 2):g}"
    return env


def _template(templates: str | os.PathLike[str] | None) -> jinja2.Template:
    """The class report's template, compiled once (~0.1 s) and kept by the environment."""
    return _environment(str(templates) if templates else None).get_template(TEMPLATE)


def render(data: dict[str, Any], *, templates: str | os.PathLike[str] | None = None) -> str:
    return _template(templates).render(**data)


def write_class_report(
    book: Gradebook,
    path: Path,
    *,
    templates: str | os.PathLike[str] | None = None,
    title: str = "Class report",
    painter: Painter | None = None,
) -> None:
    from .export import write_atomic

    data = collect(book, title=title, painter=painter, meanwhile=lambda: _template(templates))
    write_atomic(path, render(data, templates=templates))
