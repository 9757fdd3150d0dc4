"""Untrusted text through every format: <script> payloads, ANSI escapes and 10 MB of output.

Everything the student controls (printed output, exception messages, values such as the strings
``breed_from_filename`` returns, file names, the submission's name) is filled with payloads; no
format may let one through raw, and every format stays small and says that it cut something.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import jsonschema
import pytest
from conftest import ROOT
from test_render import SGR, parse_html

from grader.model import CaseResult, ExerciseResult, Frame, Misconception, Output, Preview, Report, Status
from grader.render import FORMATS, render_report

PAYLOAD = (
    "<script>window.__pwned = 1</script>"
    '"><img src=x onerror="window.__pwned = 2">'
    "\x1b[31mRED\x1b[0m \x1b]8;;http://evil.example/\x07click\x1b]8;;\x07 \x1b[2J"
    "over\rwrite \x00 \x07 \u202egnp.exe \ud800"
    "[bold red]rich[/] [link=http://evil.example]rich link[/link] :smile:"
    " [md](javascript:alert(1)) ``` `tick` <!-- --> &amp; ]]> \\"
)
BIG = 10 * 1024 * 1024


def payload_report() -> Report:
    huge = PAYLOAD + "A" * BIG
    frames = (Frame(f"{PAYLOAD}.py", 3, PAYLOAD, huge),)
    preview = Preview(
        summary=PAYLOAD,
        dtype=PAYLOAD,
        shape=(2,),
        cells=((PAYLOAD, huge),),
        marks=((True, False),),
        col_index=(0, 1),
    )
    case = CaseResult(
        id=PAYLOAD,
        label=PAYLOAD,
        status=Status.FAILED,
        message=huge,
        details=(huge, PAYLOAD),
        misconception="regex-unescaped-dot",
        call=f"breed_from_filename({PAYLOAD!r})" + "B" * BIG,
        expected=preview,
        got=preview,
        traceback=frames,
    )
    crash = CaseResult(id="c", label=PAYLOAD, status=Status.ERROR, message=huge, traceback=frames)
    hidden = CaseResult(id="h", label=PAYLOAD, status=Status.FAILED, message=huge, hidden=True)
    exercise = ExerciseResult(
        id="regex_labels.breed_from_filename",
        title="breed_from_filename(fname)",
        status=Status.FAILED,
        score=1.0,
        max_score=3,
        message=huge,
        cases=(case, crash, hidden),
        misconceptions=(Misconception("regex-unescaped-dot", PAYLOAD, PAYLOAD, PAYLOAD),),
        hint=PAYLOAD,
        notes=(huge,),
    )
    return Report(
        submission=PAYLOAD + ".py",
        exercises=(exercise,),
        grader_version="0.1.0",
        seed=1,
        hidden=True,
        warnings=(huge,),
        errors=(huge,),
        crash=huge,
        output=Output(text=(PAYLOAD + "\n") * 10 + "C" * BIG, total_bytes=BIG + 4000, truncated=False),
    )


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    report = payload_report()
    out = {fmt: render_report(report, fmt, execution_time=1.0) for fmt in FORMATS}
    out["terminal-color"] = render_report(report, "terminal", color=True)
    return out


RAW_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f\u202e\ud800]")


@pytest.mark.parametrize("fmt", [*FORMATS, "terminal-color"])
def test_no_control_characters_survive(rendered, fmt: str) -> None:
    text = rendered[fmt]
    if fmt == "terminal-color":
        text = SGR.sub("", text)  # our own colours are the only escapes
    assert not RAW_CONTROLS.search(text), repr(RAW_CONTROLS.search(text))
    text.encode("utf-8")  # no lone surrogates: every format can be written as UTF-8


@pytest.mark.parametrize("fmt", [*FORMATS, "terminal-color"])
def test_output_is_capped_and_says_so(rendered, fmt: str) -> None:
    text = rendered[fmt]
    assert len(text) < 600_000, len(text)
    assert "more characters" in text


def test_html_has_no_markup_from_the_student(rendered) -> None:
    html = rendered["html"]
    page = parse_html(html)
    allowed = {
        "html", "head", "meta", "link", "title", "style", "body", "main", "div", "h1", "h2", "h3", "h4",
        "table", "thead", "tbody", "tr", "th", "td", "a", "code", "span", "section", "p", "pre", "ul",
        "li", "b", "figure", "figcaption", "img", "footer", "br",
    }  # fmt: skip
    assert {t for t, _ in page.tags} <= allowed
    for tag, attrs in page.tags:
        assert not [k for k in attrs if k.startswith("on")], (tag, attrs)
        if tag == "img":
            assert (attrs.get("src") or "").startswith("data:image/"), attrs
    assert "<script" not in html.lower() and "<img src=x" not in html
    assert "&lt;script&gt;" in html  # shown as text


def test_markdown_renders_no_html_from_the_student(rendered) -> None:
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark", {"html": True}).render(rendered["markdown"])
    page = parse_html(html)
    assert "script" not in {t for t, _ in page.tags}
    assert not [a for t, a in page.tags if t == "img"]
    for _, attrs in page.tags:
        assert not [k for k in attrs if k.startswith("on")]
        assert not (attrs.get("href") or "").lower().startswith("javascript")
    # Raw HTML reaches a Markdown renderer only as html_block / html_inline tokens: there are none
    # (the payload sits in code spans and fences, which show it as text).
    md = MarkdownIt("commonmark", {"html": True})
    tokens = md.parse(rendered["markdown"])
    kinds = {t.type for t in tokens} | {c.type for t in tokens for c in t.children or ()}
    assert not kinds & {"html_block", "html_inline"}, kinds
    assert "&lt;script&gt;" in html  # shown as text


@pytest.mark.parametrize("fmt", ["json", "gradescope"])
def test_json_formats_stay_valid_and_escape_markup(rendered, fmt: str) -> None:
    text = rendered[fmt]
    data = json.loads(text)
    assert "<script" not in text  # tojson writes < as \\u003c
    schema = "report" if fmt == "json" else "gradescope"
    jsonschema.validate(data, json.loads((ROOT / "schemas" / f"{schema}.schema.json").read_text()))
    if fmt == "gradescope":
        strings = json.dumps(data, ensure_ascii=False)
        assert "\\u001b" not in strings and "\x1b" not in strings  # Gradescope shows the text as is


def test_junit_stays_well_formed(rendered) -> None:
    text = rendered["junit"]
    root = ET.fromstring(text.encode("utf-8"))
    assert "<script" not in text and "<img" not in text
    failure = root.find("./testsuite/testcase/failure")
    assert failure is not None and "<script>" in (failure.get("message") or "")  # kept as text


@pytest.mark.parametrize("fmt", ["terminal", "terminal-color"])
def test_terminal_neutralises_escapes_and_rich_markup(rendered, fmt: str) -> None:
    text = rendered[fmt]
    if fmt == "terminal-color":
        assert "\x1b]8" not in text  # no hyperlink from [link=...]
        text = SGR.sub("", text)
    assert "\\x1b[31mRED" in text  # the student's escape is shown, not obeyed
    assert "[bold red]rich[/]" in text and "[link=http://evil.example]" in text
    assert ":smile:" in text
    assert "over\\x0dwrite" in text
