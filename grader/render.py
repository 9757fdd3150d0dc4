"""Report.to_dict() -> text, through Jinja templates only (one per format, shared macros).

Templates never call into the engine. Everything from the student is untrusted: autoescaping is on
for HTML and XML, control characters are neutralised for terminals, long text is cut with a note.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from grader.model import Report

FORMATS: dict[str, str] = {
    "terminal": "terminal.txt.j2",
    "json": "report.json.j2",
}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def templates_dir() -> Path:
    """Packaged templates (wheel) or the repo's ``templates/`` (editable install / checkout)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_bundled" / "templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("imgclass-kit templates not found (broken installation?)")


def clean(text: Any) -> str:
    """Neutralise terminal control sequences: ESC and other control characters become visible escapes."""
    return _CONTROL.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}",
        str(text),
    )


def cap(text: Any, limit: int = 2000) -> str:
    s = str(text)
    if len(s) <= limit:
        return s
    return s[:limit] + f"… [cut: {len(s) - limit:,} more characters]"


def num(value: Any) -> str:
    """Scores: 2, 1.5, 0.67."""
    v = float(value)
    return f"{v:.2f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))


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
    env.filters.update(clean=clean, cap=cap, num=num)
    return env


def render(
    data: dict[str, Any],
    fmt: str = "terminal",
    *,
    templates: str | os.PathLike[str] | None = None,
    **context: Any,
) -> str:
    """Render a report dict in ``fmt``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    env = environment(str(templates) if templates else None)
    return env.get_template(FORMATS[fmt]).render(report=data, **context)


def render_report(
    report: Report, fmt: str = "terminal", *, templates: str | os.PathLike[str] | None = None
) -> str:
    """Render a Report (the usual entry point: the CLI, batch feedback and notebooks use it)."""
    return render(report.to_dict(), fmt, templates=templates)
