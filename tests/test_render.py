"""Report formats: validity against their schemas, what each shows, plots, colour and lazy imports."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import jsonschema
import pytest
from conftest import ROOT, ZOO, run_grade
from test_render_goldens import crash_report, edge_report, mistaken_report

from grader.model import Report
from grader.render import FORMATS, gradescope_tests, md, md_block, md_code, render_report

REPORT_SCHEMA = json.loads((ROOT / "schemas" / "report.schema.json").read_text())
GRADESCOPE_SCHEMA = json.loads((ROOT / "schemas" / "gradescope.schema.json").read_text())
REPORTS = {"mistaken": mistaken_report, "edge": edge_report, "crash": crash_report}
SGR = re.compile(r"\x1b\[[0-9;]*m")


class Tags(HTMLParser):
    """Every start tag with its attributes, and the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(text: str) -> Tags:
    p = Tags()
    p.feed(text)
    p.close()
    return p


# ----------------------------------------------------------------------------- schemas


@pytest.mark.parametrize("name", list(REPORTS))
def test_json_report_validates_against_its_schema(name: str) -> None:
    data = json.loads(render_report(REPORTS[name](), "json"))
    jsonschema.validate(data, REPORT_SCHEMA)
    assert data == json.loads(json.dumps(REPORTS[name]().to_dict()))  # nothing lost on the way


@pytest.mark.parametrize("name", list(REPORTS))
def test_gradescope_results_validate_against_gradescope_spec(name: str) -> None:
    report = REPORTS[name]()
    data = json.loads(render_report(report, "gradescope", execution_time=3.6))
    jsonschema.validate(data, GRADESCOPE_SCHEMA)
    assert data["score"] == report.score
    assert data["execution_time"] == 4
    assert data["output_format"] == "text"
    for t in data["tests"]:
        assert set(t) >= {"name", "score", "max_score", "status", "output", "visibility"}
        assert t["status"] in ("passed", "failed")
        assert t["output_format"] == "text"
    # the tests' points add up to the exercises' points
    assert sum(t["max_score"] for t in data["tests"]) == pytest.approx(report.max_score)
    assert sum(t["score"] for t in data["tests"]) == pytest.approx(report.score)


def test_gradescope_schema_rejects_what_gradescope_would_not_take() -> None:
    ok = {"score": 1.0, "tests": [{"name": "a", "score": 1, "max_score": 1, "visibility": "visible"}]}
    jsonschema.validate(ok, GRADESCOPE_SCHEMA)
    for bad in (
        {"tests": [{"name": "no score anywhere"}]},
        {"score": 1, "tests": [{"visibility": "students"}]},
        {"score": 1, "tests": [{"status": "ok"}]},
        {"score": 1, "output_format": "rtf"},
        {"score": "1"},
        {"score": 1, "tests": [{"max_points": 2}]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, GRADESCOPE_SCHEMA)


def test_gradescope_hidden_cases_are_shown_only_after_publishing() -> None:
    data = json.loads(render_report(edge_report(), "gradescope"))
    hidden = [t for t in data["tests"] if t["name"].endswith("(hidden cases)")]
    assert {t["visibility"] for t in hidden} == {"after_published"}
    assert {t["name"] for t in hidden} == {
        "losses.nll_loss: nll_loss(log_probs, targets, reduction='mean') (hidden cases)",
        "losses.binary_softmax: binary_softmax(acts) (hidden cases)",
    }
    visible = [t for t in data["tests"] if t not in hidden]
    assert {t["visibility"] for t in visible} == {"visible"}
    nll = next(t for t in visible if t["name"].startswith("losses.nll_loss"))
    assert "hidden" not in nll["output"]  # the visible test says nothing about hidden cases
    assert "nll-missing-minus" in nll["output"] and "hint: loss = -log_probs" in nll["output"]
    assert "epoch 1" not in json.dumps(data)  # printed output may reveal hidden cases: left out


def test_gradescope_split_keeps_an_exercise_whole_without_hidden_cases() -> None:
    tests = gradescope_tests(mistaken_report().to_dict())
    assert len(tests) == len(mistaken_report().exercises)
    assert all(t["visibility"] == "visible" for t in tests)


@pytest.mark.parametrize("name", list(REPORTS))
def test_junit_is_well_formed_with_consistent_counts(name: str) -> None:
    report = REPORTS[name]()
    root = ET.fromstring(render_report(report, "junit").encode("utf-8"))
    assert root.tag == "testsuites"
    cases = root.findall("./testsuite/testcase")
    assert int(root.get("tests", "-1")) == len(cases)
    assert int(root.get("failures", "-1")) == len(root.findall("./testsuite/testcase/failure"))
    assert int(root.get("errors", "-1")) == len(root.findall("./testsuite/testcase/error"))
    assert int(root.get("skipped", "-1")) == len(root.findall("./testsuite/testcase/skipped"))
    for suite in root.findall("testsuite"):
        assert int(suite.get("tests", "-1")) == len(suite.findall("testcase"))
    n_cases = sum(len(e.cases) for e in report.exercises)
    assert len([c for c in cases if c.get("classname") != "submission"]) == n_cases


# ----------------------------------------------------------------------------- what each format shows


def test_html_shows_every_part_of_a_failure() -> None:
    report = mistaken_report()
    html = render_report(report, "html")
    page = parse_html(html)
    ids = {a.get("id") for _, a in page.tags}
    for e in report.exercises:
        assert f"ex-{e.id}" in ids
    text = "".join(page.text)
    softmax = report.exercise("losses.softmax")
    first = next(c for c in softmax.cases if not c.passed)
    assert first.call in text and first.message in text
    for m in softmax.misconceptions:
        assert m.name in text and m.explanation in text and m.hint in text
    # expected vs got tables, with the differing entries highlighted
    assert html.count('class="diff"') >= 4
    # the student's own traceback line for the crash
    nll = report.exercise("losses.nll_loss")
    frame = next(c for c in nll.cases if c.traceback).traceback[-1]
    assert frame.code in text and f"line {frame.line}" in text
    # pictures: input, yours, reference, resize-then-augment, difference, and the PSNR figures
    labels = [a.get("alt") for t, a in page.tags if t == "img"]
    for label in ("input", "yours", "reference (presizing)", "resize then augment", "difference"):
        assert label in labels
    assert "PSNR presizing (dB)" in text
    # plots for softmax and cross-entropy, as SVG data URIs
    plots = [a for t, a in page.tags if t == "img" and a.get("class") == "plot"]
    assert len(plots) == 2
    for a in plots:
        svg = base64.b64decode((a.get("src") or "").split(",", 1)[1])
        assert ET.fromstring(svg).tag.endswith("svg")
    # self-contained: no scripts, no external resources, a CSP that forbids fetching
    assert not [t for t, _ in page.tags if t in ("script", "iframe", "object", "embed", "base", "form")]
    for tag, attrs in page.tags:
        for key in ("src", "href"):
            value = attrs.get(key)
            if value is not None:
                assert value.startswith(("data:", "#")), (tag, key, value[:60])
    assert "default-src 'none'" in html


def test_markdown_summary_and_failures() -> None:
    report = mistaken_report()
    text = render_report(report, "markdown")
    for e in report.exercises:
        assert f"`{e.id}`" in text
    assert "| ❌ | `losses.softmax` | failed | 0/2 |" in text
    assert "> **Misconception `softmax-sigmoid`:**" in text
    assert "```text\nsoftmax(torch.tensor([[1.0, 2.0]]))\n```" in text
    assert "**0.7311**" in text  # differing entries in bold


def test_terminal_colour_escapes_and_plain_fallback() -> None:
    report = mistaken_report()
    plain = render_report(report, "terminal")
    colour = render_report(report, "terminal", color=True)
    assert "\x1b[" not in plain
    assert "\x1b[31m" in colour  # failed in red
    assert SGR.sub("", colour) == plain  # same text, only coloured


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_format_renders_every_report(fmt: str) -> None:
    for make in REPORTS.values():
        assert render_report(make(), fmt).strip()


def test_templates_can_be_overridden(tmp_path) -> None:
    (tmp_path / "report.md.j2").write_text("custom {{ report.score }}\n")
    assert render_report(edge_report(), "markdown", templates=tmp_path) == "custom 6.0\n"


# ----------------------------------------------------------------------------- filters


@pytest.mark.parametrize(
    "text",
    ["plain", "a `tick` here", "``double``", "`edge`", "<b>x</b> | [a](javascript:1)", "line\nbreak"],
)
def test_markdown_code_cannot_be_closed_from_inside(text: str) -> None:
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark").render(md_code(text))
    assert html.count("<code>") == 1 and html.count("</code>") == 1
    block = MarkdownIt("commonmark").render(md_block(text))
    assert block.count("<pre>") == 1 and "<b>" not in block


def test_markdown_text_escapes_html_and_syntax() -> None:
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark").render(md("<script>x</script> **b** [a](javascript:alert(1)) # h | `c`"))
    assert "<script" not in html and "<strong>" not in html and "<a " not in html and "<code>" not in html


# ----------------------------------------------------------------------------- plots and figures


def test_rows_plot_is_a_deterministic_svg_with_one_panel_per_row() -> None:
    from grader.plots import rows_plot

    fig = {
        "series": [
            {"name": "yours", "rows": [[0.7, 0.9], [0.5, 0.2], [0.1, 0.3]]},
            {"name": "reference", "rows": [[0.3, 0.7], [0.6, 0.4], [0.4, 0.6]]},
        ]
    }
    uri = rows_plot(fig)
    assert uri.startswith("data:image/svg+xml;base64,")
    svg = base64.b64decode(uri.split(",", 1)[1]).decode()
    assert "row 2" in svg and "row 3" not in svg and "yours" in svg and "reference" in svg
    assert rows_plot(fig) == uri
    assert rows_plot({"series": [{"name": "yours", "rows": [[float("nan")]]}]}) == ""


def _softmax_sigmoid(acts, dim=-1):
    import torch

    return torch.sigmoid(acts)


def test_softmax_figure_compares_rows_of_a_small_failing_case() -> None:
    from grader.settings import Settings
    from grader.testing import run_exercise

    result = run_exercise("losses.softmax", _softmax_sigmoid, Settings(pictures=True))
    (fig,) = result.figures
    assert fig.kind == "rows"
    series = dict(fig.series)
    assert set(series) == {"yours", "reference"}
    rows = series["reference"]
    assert 2 <= len(rows) <= 8 and all(len(r) <= 10 for r in rows)
    assert all(abs(sum(r) - 1) < 1e-3 for r in rows)  # the reference's rows are probabilities
    assert any(abs(sum(r) - 1) > 0.05 for r in series["yours"])  # the sigmoid's are not
    assert not run_exercise("losses.softmax", _softmax_sigmoid, Settings(pictures=False)).figures


def test_cross_entropy_figure_and_none_when_correct() -> None:
    import importlib.util

    from grader.settings import Settings
    from grader.testing import run_exercise

    spec = importlib.util.spec_from_file_location("ce_probs", ZOO / "ce_probs_not_log_probs.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    (fig,) = run_exercise("losses.cross_entropy", mod.cross_entropy, Settings(pictures=True)).figures
    yours = dict(fig.series)["yours"]
    assert len(yours) == 1 and all(v < 0 for v in yours[0])  # -p: the slip in the lesson
    assert all(v > 0 for v in dict(fig.series)["reference"][0])

    sol = importlib.util.spec_from_file_location("sol_losses", ROOT / "solutions" / "losses.py")
    assert sol and sol.loader
    good = importlib.util.module_from_spec(sol)
    sol.loader.exec_module(good)
    for ex in ("losses.softmax", "losses.binary_softmax", "losses.cross_entropy"):
        func = getattr(good, ex.split(".")[1])
        assert not run_exercise(ex, func, Settings(pictures=True)).figures


# ----------------------------------------------------------------------------- start-up and the CLI


def test_render_and_cli_import_no_heavy_libraries() -> None:
    code = (
        "import sys, grader.cli, grader.render, grader.plots; "
        "heavy = {'matplotlib', 'rich', 'PIL'} & {m.split('.')[0] for m in sys.modules}; "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_writes_every_format_at_once(tmp_path) -> None:
    args = []
    for fmt in FORMATS:
        args += ["--format", fmt, "--out", str(tmp_path / f"report.{fmt}")]
    proc = run_grade(str(ZOO / "softmax_sigmoid.py"), "--only", "losses.softmax", *args)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    data = json.loads((tmp_path / "report.json").read_text())
    jsonschema.validate(data, REPORT_SCHEMA)
    gs = json.loads((tmp_path / "report.gradescope").read_text())
    jsonschema.validate(gs, GRADESCOPE_SCHEMA)
    assert gs["execution_time"] >= 0 and gs["tests"][0]["status"] == "failed"
    ET.fromstring((tmp_path / "report.junit").read_bytes())
    html = (tmp_path / "report.html").read_text()
    assert "data:image/svg+xml;base64," in html  # the plot (the CLI asks for pictures with html)
    assert "softmax-sigmoid" in (tmp_path / "report.markdown").read_text()
    assert "\x1b" not in (tmp_path / "report.terminal").read_text()
    assert Report.from_dict(data).exercise("losses.softmax").figures


def test_cli_colour_only_when_asked_and_never_with_no_color() -> None:
    target = str(ZOO / "softmax_sigmoid.py")
    plain = run_grade(target, "--only", "losses.softmax")  # piped, NO_COLOR=1
    assert "\x1b" not in plain.stdout and "losses.softmax" in plain.stdout
    forced = run_grade(target, "--only", "losses.softmax", env={"NO_COLOR": "", "FORCE_COLOR": "1"})
    assert "\x1b[31m" in forced.stdout
    assert SGR.sub("", forced.stdout) == plain.stdout
    both = run_grade(target, "--only", "losses.softmax", env={"NO_COLOR": "1", "FORCE_COLOR": "1"})
    assert "\x1b" not in both.stdout
