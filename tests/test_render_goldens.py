"""Golden files for every report format, rendered from a fixed result set.

The result set never depends on timing or on today's engine:

- ``mistaken``: the report of ``tests/goldens/mistaken/`` (a realistic student folder with several
  mistakes, a crash and a print), graded once with pictures and frozen in
  ``tests/goldens/input/mistaken.json``. Refreeze it after a deliberate change of the engine's output
  with ``python tests/test_render_goldens.py --refreeze``.
- ``edge``: built here from model objects: every status, hidden cases, a traceback, a forbidden call,
  a time-out, cut output, warnings and hints.
- ``crash``: a grader failure and an input error, no exercises.

Each output is written to ``tests/goldens/actual/`` (gitignored) and compared with
``tests/goldens/<name>.<format>``. Accept new outputs with ``make goldens`` (it sets UPDATE_GOLDENS=1).
Embedded pictures (data URIs) are replaced by a placeholder in the goldens: the plots come from
matplotlib, whose bytes change between versions; tests/test_render.py checks the pictures themselves.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

from grader.model import (
    CaseResult,
    ExerciseResult,
    Figure,
    Frame,
    Misconception,
    Output,
    Preview,
    Report,
    Status,
)

GOLDENS = Path(__file__).resolve().parent / "goldens"
ACTUAL = GOLDENS / "actual"
INPUT = GOLDENS / "input"
UPDATE = os.environ.get("UPDATE_GOLDENS", "") not in ("", "0")
EXECUTION_TIME = 12.4

#: format -> golden file suffix
SUFFIX = {
    "terminal": "terminal.txt",
    "terminal-color": "terminal-color.ansi",
    "html": "html",
    "markdown": "md",
    "json": "json",
    "gradescope": "gradescope.json",
    "junit": "junit.xml",
}
_DATA_URI = re.compile(r"data:image/(png|svg\+xml);base64,[A-Za-z0-9+/=]+")


def mistaken_report() -> Report:
    return Report.from_dict(json.loads((INPUT / "mistaken.json").read_text(encoding="utf-8")))


def edge_report() -> Report:
    """Every status and every optional part of a report, from model objects."""
    tb = (
        Frame("ana.ipynb", 12, "breed_from_filename", "return re.match(PATTERN, fname).group(1)"),
        Frame("ana.ipynb", 4, "_helper", "raise AttributeError(name)"),
    )
    misc = Misconception(
        "nll-missing-minus",
        "missing minus sign",
        "You returned the log-probability of the target; the loss is its negative.",
        "loss = -log_probs[range(n), targets]",
    )
    vec = Preview(
        summary="tensor (3,) float32",
        dtype="float32",
        shape=(3,),
        cells=(("0.6931", "1.3133", "0.3133"),),
        marks=((True, True, False),),
        col_index=(0, 1, 2),
    )
    vec_got = Preview(
        summary="tensor (3,) float32",
        dtype="float32",
        shape=(3,),
        cells=(("-0.6931", "-1.3133", "0.3133"),),
        marks=((True, True, False),),
        col_index=(0, 1, 2),
    )
    return Report(
        submission="ana's notebook.ipynb",
        grader_version="0.1.0",
        seed=20260505,
        hidden=True,
        exercises=(
            ExerciseResult(
                "regex_labels.breed_from_filename",
                "breed_from_filename(fname)",
                Status.ERROR,
                1.5,
                3,
                "a one-word breed: raised AttributeError: 'NoneType' object has no attribute 'group'",
                cases=(
                    CaseResult(
                        "two-word", "a two-word breed", Status.PASSED, call="breed_from_filename('a_b_1.jpg')"
                    ),
                    CaseResult(
                        "one-word",
                        "a one-word breed",
                        Status.ERROR,
                        "raised AttributeError: 'NoneType' object has no attribute 'group'",
                        call="breed_from_filename('pug_12.jpg')",
                        traceback=tb,
                    ),
                ),
                hint="re.match returns None when the pattern does not match: check before .group(1).",
            ),
            ExerciseResult(
                "losses.softmax",
                "softmax(acts, dim=-1)",
                Status.TIMEOUT,
                0.5,
                2,
                "big: did not finish within 10 s",
                cases=(
                    CaseResult("one-row", "one row of two activations", Status.PASSED, call="softmax(x)"),
                    CaseResult("big", "512 × 1000 activations", Status.TIMEOUT, "did not finish within 10 s"),
                    CaseResult(
                        "after",
                        "cases after the time-out",
                        Status.SKIPPED,
                        "not run (an earlier case stopped this exercise)",
                    ),
                ),
                hint="Softmax turns activations into probabilities.",
            ),
            ExerciseResult(
                "losses.cross_entropy",
                "cross_entropy(acts, targets, reduction='mean')",
                Status.FORBIDDEN,
                0.0,
                3,
                "implement it yourself: your cross_entropy called F.cross_entropy (seen as aten.cross_entropy_loss)",
                cases=(
                    CaseResult("tiny", "one item, two classes", Status.FORBIDDEN, "used F.cross_entropy"),
                ),
            ),
            ExerciseResult(
                "losses.nll_loss",
                "nll_loss(log_probs, targets, reduction='mean')",
                Status.FAILED,
                1.0,
                2,
                "reduction='none': 2 / 3 values differ",
                cases=(
                    CaseResult("mean", "reduction='mean'", Status.PASSED, call="nll_loss(lp, t)"),
                    CaseResult(
                        "none",
                        "reduction='none'",
                        Status.FAILED,
                        "2 / 3 values differ",
                        ("first at (0,): got -0.6931, expected 0.6931",),
                        misconception="nll-missing-minus",
                        call="nll_loss(lp, t, reduction='none')",
                        expected=vec,
                        got=vec_got,
                    ),
                    CaseResult(
                        "hidden-none",
                        "hidden: reduction='none'",
                        Status.FAILED,
                        "2 / 3 values differ",
                        misconception="nll-missing-minus",
                        hidden=True,
                    ),
                    CaseResult("hidden-mean", "hidden: reduction='mean'", Status.PASSED, hidden=True),
                ),
                misconceptions=(misc,),
                hint="For each item, the loss is minus the log-probability of the right class.",
                figures=(
                    Figure(
                        kind="rows",
                        title="Your losses vs PyTorch's, per item",
                        caption="One bar pair per item.",
                        series=(
                            ("yours", ((-0.6931, -1.3133, 0.3133),)),
                            ("reference", ((0.6931, 1.3133, 0.3133),)),
                        ),
                    ),
                ),
            ),
            ExerciseResult(
                "losses.binary_softmax",
                "binary_softmax(acts)",
                Status.PASSED,
                1.0,
                1,
                cases=(
                    CaseResult(
                        "one-row", "one row of two activations", Status.PASSED, call="binary_softmax(x)"
                    ),
                    CaseResult("hidden-random", "hidden: random 8×2 activations", Status.PASSED, hidden=True),
                ),
            ),
            ExerciseResult(
                "presizing.presize_batch",
                "presize_batch(batch, thetas, size)",
                Status.PASSED,
                2.0,
                2,
                cases=(CaseResult("identity", "no augmentation, same size", Status.PASSED),),
                figures=(
                    Figure(
                        kind="images",
                        title="Presizing: one interpolation instead of two",
                        caption="PSNR against the exact augmented picture.",
                        metrics=(("PSNR yours (dB)", 44.25), ("PSNR resize then augment (dB)", 23.77)),
                    ),
                ),
                notes=("Presizing kept 20.5 dB more detail than resize-then-augment.",),
            ),
            ExerciseResult(
                "presizing.augment_matrix",
                "augment_matrix(angle_deg, scale, flip, translate=(0, 0))",
                Status.NOT_ATTEMPTED,
                0.0,
                2,
                "not implemented yet (the stub still raises NotImplementedError)",
                cases=(
                    CaseResult(
                        "identity", "no augmentation", Status.NOT_ATTEMPTED, "raised NotImplementedError"
                    ),
                ),
            ),
        ),
        warnings=("cell 3: the magic %matplotlib inline was skipped",),
        isolation=("process", "rlimits", "pid-namespace"),
        output=Output(text="epoch 1\nepoch 2\n", total_bytes=70_000, truncated=True),
        hints_used=(("losses.softmax", 2),),
    )


def crash_report() -> Report:
    return Report(
        submission="broken.py",
        exercises=(),
        grader_version="0.1.0",
        seed=20260505,
        errors=("SyntaxError in broken.py, line 3: invalid syntax",),
        crash="internal error: the worker could not be started (OSError: [Errno 12] Cannot allocate memory)",
    )


REPORTS = {"mistaken": mistaken_report, "edge": edge_report, "crash": crash_report}


def render_golden(name: str, fmt: str) -> str:
    from grader.render import render_report

    report = REPORTS[name]()
    if fmt == "terminal-color":
        text = render_report(report, "terminal", color=True)
    else:
        text = render_report(report, fmt, execution_time=EXECUTION_TIME)
    return _DATA_URI.sub(lambda m: f"data:image/{m.group(1)};base64,(picture)", text)


@pytest.mark.parametrize("fmt", list(SUFFIX))
@pytest.mark.parametrize("name", list(REPORTS))
def test_golden(name: str, fmt: str) -> None:
    text = render_golden(name, fmt)
    filename = f"{name}.{SUFFIX[fmt]}"
    ACTUAL.mkdir(parents=True, exist_ok=True)
    (ACTUAL / filename).write_text(text, encoding="utf-8")
    golden = GOLDENS / filename
    if UPDATE:
        golden.write_text(text, encoding="utf-8")
        return
    assert golden.exists(), f"no golden {golden}: run `make goldens` to create it, then review and commit it"
    expected = golden.read_text(encoding="utf-8")
    assert text == expected, (
        f"{fmt} report of '{name}' differs from its golden: diff {golden} {ACTUAL / filename}; "
        "if the change is intended, run `make goldens` and commit the new golden"
    )


def test_goldens_cover_every_format() -> None:
    from grader.render import FORMATS

    assert set(FORMATS) <= set(SUFFIX), "add a golden suffix for every new format"


def test_frozen_input_is_a_realistic_mistaken_submission() -> None:
    report = mistaken_report()
    statuses = {e.status for e in report.exercises}
    assert {Status.PASSED, Status.FAILED, Status.ERROR, Status.NOT_ATTEMPTED} <= statuses
    assert any(f.kind == "images" and f.images for e in report.exercises for f in e.figures)
    assert report.output.total_bytes > 0


def refreeze() -> None:
    """Grade tests/goldens/mistaken/ again (with pictures) and freeze the report as the golden input."""
    from grader.api import Grader
    from grader.settings import Settings

    with Grader(Settings(pictures=True), only=("regex_labels", "presizing", "losses")) as g:
        report = g.grade_path(GOLDENS / "mistaken")
    INPUT.mkdir(parents=True, exist_ok=True)
    data = report.to_dict()
    data["isolation"] = ["process", "rlimits", "pid-namespace", "net-namespace", "seccomp"]
    (INPUT / "mistaken.json").write_text(
        json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--refreeze"]:
        refreeze()
    else:
        sys.exit("usage: python tests/test_render_goldens.py --refreeze")
