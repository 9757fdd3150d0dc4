"""Report.to_dict() -> text, through Jinja templates only (one per format, shared macros).

Templates never call into the engine: they see the report dict (after ``prepare``: strings capped,
data URIs checked, plots drawn for HTML) plus a small context (``color``, ``execution_time``).
Everything from the student is untrusted: autoescaping is on for HTML and XML, control characters
are neutralised (terminal, Markdown, Gradescope, JUnit), Markdown escapes HTML and its own syntax,
and every string is cut at a size limit with a note saying so.

Heavy libraries (rich, matplotlib) are imported only when a format needs them: ``grade`` starts fast.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, TextIO

import jinja2

from grader.model import Report

#: format -> template (in ``templates/``, or in ``--templates DIR`` first).
FORMATS: dict[str, str] = {
    "terminal": "terminal.txt.j2",
    "html": "report.html.j2",
    "markdown": "report.md.j2",
    "json": "report.json.j2",
    "gradescope": "gradescope.json.j2",
    "junit": "junit.xml.j2",
}
#: What each format is for (``grade --formats``).
DESCRIPTIONS: dict[str, str] = {
    "terminal": "compact summary and explained failures (colour on a terminal, plain when piped or NO_COLOR)",
    "html": "one self-contained page: tables, highlighted differences, pictures and plots",
    "markdown": "for an LMS comment or a pull request",
    "json": "the machine-readable report (schemas/report.schema.json)",
    "gradescope": "results.json for a Gradescope autograder (schemas/gradescope.schema.json)",
    "junit": "JUnit XML, one test case per graded case (for CI)",
}

#: Any string in a report is cut to this many characters (the student's printed output: OUTPUT_LIMIT).
TEXT_LIMIT = 4000
OUTPUT_LIMIT = 20_000
#: Largest embedded picture (a data URI) kept; pictures come from the grader, never from the student.
DATA_URI_LIMIT = 4_000_000
_DATA_URI = re.compile(r"data:image/(png|svg\+xml);base64,[A-Za-z0-9+/]+={0,2}")

# C0/C1 controls (but tab and newline), zero-width and bidirectional overrides, lone surrogates and
# the non-characters XML refuses.
_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]"
)
_MD_SPECIAL = re.compile(r"([\\`*_\[\]#|~])")


def templates_dir() -> Path:
    """Packaged templates (wheel) or the repo's ``templates/`` (editable install / checkout)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_bundled" / "templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("imgclass-kit templates not found (broken installation?)")


# ----------------------------------------------------------------------------- filters


def clean(text: Any) -> str:
    """Neutralise terminal control sequences: ESC and other control characters become visible escapes."""
    return _CONTROL.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}",
        str(text),
    )


def cap(text: Any, limit: int = 2000) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut."""
    s = str(text)
    if len(s) <= limit:
        return s
    return s[:limit] + f"… [cut: {len(s) - limit:,} more characters]"


def num(value: Any) -> str:
    """Scores: 2, 1.5, 0.67."""
    v = float(value)
    return f"{v:.2f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))


def md(text: Any) -> str:
    """Inline Markdown text: one line, HTML characters as entities, Markdown syntax backslash-escaped."""
    s = clean(text).replace("\r", " ").replace("\n", " ")
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", s)


def _longest_run(text: str, char: str) -> int:
    runs = re.findall(f"{re.escape(char)}+", text)
    return max((len(r) for r in runs), default=0)


def md_code(text: Any) -> str:
    """Inline Markdown code that no content can close early (the fence is longer than any backtick run)."""
    s = clean(text).replace("\r", " ").replace("\n", " ")
    fence = "`" * (_longest_run(s, "`") + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or not s.strip() else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def md_block(text: Any) -> str:
    """A fenced Markdown code block (nothing inside is interpreted)."""
    s = clean(text).rstrip("\n")
    fence = "`" * max(3, _longest_run(s, "`") + 1)
    return f"{fence}text\n{s}\n{fence}"


@jinja2.pass_context
def term(ctx: jinja2.runtime.Context, text: Any) -> str:
    """Student text for the terminal: controls neutralised, and rich markup escaped when in colour."""
    s = clean(text)
    if ctx.get("color"):
        from rich.markup import escape

        s = escape(s)
    return s


# ----------------------------------------------------------------------------- preparing the data


_has_control = _CONTROL.search


def _capped(value: Any, key: str = "") -> Any:
    """A copy of a report dict: every string capped and its control characters neutralised, pictures checked."""
    kind = type(value)
    if kind is str and key != "src":  # the common case first: a short, clean string is kept as it is
        limit = OUTPUT_LIMIT if key == "text" else TEXT_LIMIT
        if len(value) <= limit and _has_control(value) is None:
            return value
        return clean(cap(value, limit))
    if kind is dict:
        return {k: _capped(v, k) for k, v in value.items()}
    if kind is list:
        return [_capped(v, key) for v in value]
    if kind in (float, int, bool) or value is None:
        return value
    if isinstance(value, dict):
        return {k: _capped(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_capped(v, key) for v in value]
    if isinstance(value, str):
        if key == "src":
            ok = len(value) <= DATA_URI_LIMIT and _DATA_URI.fullmatch(value) is not None
            return value if ok else ""
        return clean(cap(value, OUTPUT_LIMIT if key == "text" else TEXT_LIMIT))
    return value


def prepare(data: Mapping[str, Any], fmt: str) -> dict[str, Any]:
    """The dict templates see: strings capped and cleaned, pictures checked, plots drawn (HTML only)."""
    out: dict[str, Any] = _capped(dict(data))  # _capped builds new dicts and lists: a copy already
    if fmt == "html":
        from grader import plots

        for e in out.get("exercises", ()):
            for f in e.get("figures", ()):
                f["plot"] = plots.rows_plot(f) if f.get("kind") == "rows" and f.get("series") else ""
    return out


def gradescope_tests(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One Gradescope test per exercise; its hidden cases (if any) as a second test shown after publishing.

    The two parts of an exercise split its points and its score by case weight, so they add up.
    """
    tests: list[dict[str, Any]] = []
    for e in report.get("exercises", ()):
        cases = e.get("cases", [])
        hidden = [c for c in cases if c["hidden"]]
        if not hidden:
            tests.append(_gs_test(e, False, "visible", cases, e["max_score"], e["score"]))
            continue
        total_w = sum(c["weight"] for c in cases) or 1.0
        earned_w = sum(c["weight"] for c in cases if c["status"] == "passed")
        visible = [c for c in cases if not c["hidden"]]
        for hidden_part, visibility, subset in (
            (False, "visible", visible),
            (True, "after_published", hidden),
        ):
            w = sum(c["weight"] for c in subset)
            earned = sum(c["weight"] for c in subset if c["status"] == "passed")
            score = e["score"] * earned / earned_w if earned_w else 0.0
            tests.append(_gs_test(e, hidden_part, visibility, subset, e["max_score"] * w / total_w, score))
    return tests


def _gs_test(
    e: Mapping[str, Any], hidden_part: bool, visibility: str, cases: list[Any], max_score: float, score: float
) -> dict[str, Any]:
    whole = len(cases) == len(e.get("cases", []))
    passed = e["status"] == "passed" or (
        not whole
        and e["status"] not in ("forbidden", "not_attempted")
        and all(c["status"] == "passed" for c in cases)
    )
    names = {c["misconception"] for c in cases if c["misconception"]}
    part = {
        **e,
        "cases": cases,
        "passed_cases": sum(1 for c in cases if c["status"] == "passed"),
        "total_cases": len(cases),
        "misconceptions": e["misconceptions"]
        if whole
        else [m for m in e["misconceptions"] if m["name"] in names],
    }
    return {
        "hidden_part": hidden_part,
        "score": round(score, 4),
        "max_score": round(max_score, 4),
        "status": "passed" if passed else "failed",
        "visibility": visibility,
        "exercise": part,
    }


# ----------------------------------------------------------------------------- rendering


@cache
def environment(extra: str | None = None) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = []
    if extra:
        loaders.append(jinja2.FileSystemLoader(extra))
    loaders.append(jinja2.FileSystemLoader(str(templates_dir())))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "xml", "html.j2", "xml.j2"), default=False
        ),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    filters: dict[str, Callable[..., Any]] = {
        "clean": clean,
        "cap": cap,
        "num": num,
        "md": md,
        "md_code": md_code,
        "md_block": md_block,
        "term": term,
    }
    env.filters.update(filters)
    env.globals.update(gradescope_tests=gradescope_tests)
    return env


def render(
    data: Mapping[str, Any],
    fmt: str = "terminal",
    *,
    templates: str | os.PathLike[str] | None = None,
    color: bool = False,
    execution_time: float | None = None,
    **context: Any,
) -> str:
    """Render a report dict in ``fmt``.

    ``color`` (terminal only) gives ANSI colours; ``execution_time`` (seconds, Gradescope only) is the
    wall time of grading, which the report itself never holds.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return _render_prepared(prepare(data, fmt), fmt, templates, color, execution_time, **context)


def _render_prepared(
    prepared: dict[str, Any],
    fmt: str,
    templates: str | os.PathLike[str] | None,
    color: bool = False,
    execution_time: float | None = None,
    **context: Any,
) -> str:
    env = environment(str(templates) if templates else None)
    color = color and fmt == "terminal"
    text = env.get_template(FORMATS[fmt]).render(
        report=prepared, color=color, execution_time=execution_time, **context
    )
    return ansi(text) if color else text


def render_many(
    data: Mapping[str, Any], formats: Iterable[str], *, templates: str | os.PathLike[str] | None = None
) -> dict[str, str]:
    """Several formats of one report dict (batch feedback): the data is capped and cleaned once."""
    formats = list(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown format {unknown[0]!r}; choose one of {', '.join(FORMATS)}")
    prepared = prepare(data, "html" if "html" in formats else "")  # plots only matter to HTML
    return {fmt: _render_prepared(prepared, fmt, templates) for fmt in formats}


def render_report(
    report: Report,
    fmt: str = "terminal",
    *,
    templates: str | os.PathLike[str] | None = None,
    color: bool = False,
    execution_time: float | None = None,
) -> str:
    """Render a Report (the usual entry point: the CLI, batch feedback and notebooks use it)."""
    return render(report.to_dict(), fmt, templates=templates, color=color, execution_time=execution_time)


def ansi(markup: str) -> str:
    """rich markup (from the terminal template in colour mode) -> text with ANSI colour codes."""
    import io

    from rich.console import Console

    buf = io.StringIO()
    console = Console(
        file=buf,
        force_terminal=True,
        color_system="standard",
        no_color=False,
        soft_wrap=True,
        emoji=False,
        highlight=False,
        width=200,
        _environ={},
    )
    console.print(markup, end="")
    return buf.getvalue()


def use_color(stream: TextIO) -> bool:
    """Colour for the terminal report: only on a TTY, never with ``NO_COLOR`` or ``TERM=dumb``.

    ``FORCE_COLOR`` turns it on without a TTY (``NO_COLOR`` still wins).
    """
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
