"""check(): a function re-created from its source and graded in the grading service's sandbox.

Outside IPython the source is the function's file; the history path (Jupyter) is tested here on its
filter and end to end in test_notebook.py (a real kernel through nbclient).
"""

from __future__ import annotations

import hashlib

import pytest
from conftest import load_module

from grader.checker import Checked, check, grade_function, history_units, script_units
from grader.errors import UsageError
from grader.model import Status

SOFTMAX = """
import torch


def softmax(acts, dim=-1):
    m = acts.detach().amax(dim=dim, keepdim=True)
    e = torch.exp(acts - m)
    return e / e.sum(dim=dim, keepdim=True)
"""


# ----------------------------------------------------------------------------- the history filter


def test_history_keeps_definitions_in_order_and_drops_exploration():
    cells = [
        (1, "import torch\nfrom grader import check\nimport grader.nbgrader"),
        (2, "acts = torch.randn(6, 2)\nprint(acts)\nSCALE = 2.0"),
        (3, "def helper(x):\n    return x * SCALE"),
        (4, "check(helper)"),
        (5, "def helper(x):\n    return x * 3"),
    ]
    units, notes = history_units(cells, loaded={"torch", "grader", "grader.nbgrader"})
    assert [u.name for u in units] == ["In [1]", "In [2]", "In [3]", "In [5]"]
    assert units[0].text.splitlines() == ["import torch", "", ""]  # the grader's own imports are gone
    assert units[1].text.splitlines() == ["", "", "SCALE = 2.0"]  # line numbers kept
    assert "def helper(x):\n    return x * 3" in units[3].text  # the latest definition comes last
    assert notes == []


def test_history_leaves_out_failed_imports_and_cells_that_do_not_parse():
    cells = [
        (1, "import fastai_missing_xyz\nimport math"),
        (2, "def f(:\n    pass"),
        (3, "def g():\n    return 1"),
    ]
    units, notes = history_units(cells, loaded={"math"})
    assert [u.name for u in units] == ["In [1]", "In [3]"]
    assert units[0].text.splitlines() == ["", "import math"]
    assert any("fastai_missing_xyz" in n and "In [1]" in n for n in notes)
    assert any(n.startswith("In [2]") and "syntax error" in n for n in notes)


def test_script_units_keep_definitions_under_the_file_name():
    units, _ = script_units("import torch\nx = torch.randn(3)\ndef f():\n    return 1\nf()\n", "mine.py")
    assert [u.name for u in units] == ["mine.py"]
    assert units[0].text.splitlines() == ["import torch", "", "def f():", "    return 1", ""]


# ----------------------------------------------------------------------------- grading through the service


def test_a_correct_function_passes_and_the_result_is_returned(tmp_path, capsys):
    mod = load_module(tmp_path, "ck_correct", SOFTMAX)
    result = check(mod.softmax)
    assert result is not None and result.id == "losses.softmax"
    assert result.status is Status.PASSED and result.score == result.max_score == 2
    assert capsys.readouterr().out.startswith("✓ losses.softmax: passed 2/2")


def test_the_kernels_function_object_is_not_trusted(tmp_path):
    """Graded from its source: patching the live object (or torch's global state) changes nothing."""
    import torch

    mod = load_module(tmp_path, "ck_patched", SOFTMAX)
    mod.softmax.__code__ = (lambda acts, dim=-1: acts).__code__
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        checked = grade_function(None, mod.softmax)
    finally:
        torch.set_default_dtype(old)
    assert checked.result.status is Status.PASSED


def test_a_mistake_is_explained_with_its_misconception(tmp_path):
    mod = load_module(
        tmp_path,
        "ck_wrong",
        """
        def softmax(acts, dim=-1):
            return acts.exp() / acts.exp().sum(dim, keepdim=True)
        """,
    )
    checked = grade_function(None, mod.softmax)
    assert checked.result.status is Status.FAILED
    assert 0 < checked.result.score < 2
    text = checked.text()
    assert "misconception softmax-no-max-subtraction" in text
    assert "softmax(torch.randn(" in text  # the simplest failing case, as a call to paste
    html = checked.html()
    assert "softmax-no-max-subtraction" in html and 'class="imgclass-check"' in html


def test_another_name_and_an_explicit_exercise(tmp_path):
    mod = load_module(
        tmp_path,
        "ck_alias",
        """
        import torch

        def my_log_softmax(acts, dim=-1):
            m = acts.detach().amax(dim=dim, keepdim=True)
            s = acts - m
            return s - torch.log(torch.exp(s).sum(dim=dim, keepdim=True))
        """,
    )
    checked = grade_function("losses.log_softmax", mod.my_log_softmax)
    assert checked.result.id == "losses.log_softmax" and checked.result.status is Status.PASSED


def test_a_stub_is_not_attempted(tmp_path):
    mod = load_module(tmp_path, "ck_stub", "def softmax(acts, dim=-1):\n    raise NotImplementedError\n")
    checked = grade_function(None, mod.softmax)
    assert checked.result.status is Status.NOT_ATTEMPTED and checked.result.score == 0
    assert "not attempted" in checked.text()


def test_student_text_is_escaped_in_html(tmp_path):
    mod = load_module(
        tmp_path,
        "ck_html",
        """
        def softmax(acts, dim=-1):
            raise ValueError("<script>alert('x')</script>")
        """,
    )
    html = grade_function(None, mod.softmax).html()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_problems_are_raised_outside_ipython(tmp_path):
    mod = load_module(tmp_path, "ck_names", SOFTMAX)
    with pytest.raises(UsageError, match=r"did you mean 'losses\.softmax'"):
        check("losses.sofmax", mod.softmax)
    with pytest.raises(UsageError, match="Give the function too"):
        check("losses.softmax")
    with pytest.raises(UsageError, match="defined with `def`"):
        check("losses.softmax", len)


def test_hidden_cases_run_without_the_seed_reaching_the_worker(tmp_path, monkeypatch):
    """The seed is in the course file, read by the service after its fork-server started: the
    worker (running this student code) finds it nowhere in its memory or environment."""
    seed = 731_902_448_115
    config = tmp_path / "course.toml"
    config.write_text(f"[grading]\nhidden_seed = {seed}\n")
    digest = hashlib.sha256(str(seed).encode()).hexdigest()
    mod = load_module(
        tmp_path,
        "ck_spy",
        f'''
        import gc
        import hashlib
        import os
        import sys

        import torch

        DIGEST = "{digest}"
        FOUND = []


        def _seen(value):
            if isinstance(value, int) and not isinstance(value, bool) and value > 10**9:
                return hashlib.sha256(str(value).encode()).hexdigest() == DIGEST
            if isinstance(value, str) and 11 < len(value) < 100000:
                return any(
                    hashlib.sha256(value[i : i + 12].encode()).hexdigest() == DIGEST
                    for i in range(len(value) - 11)
                    if value[i : i + 12].isdigit()
                )
            return False


        def _objects():
            try:
                yield from gc.get_objects()
                return
            except ValueError:  # a worker refuses gc introspection: walk what the modules reach
                seen, queue = set(), [vars(m) for m in list(sys.modules.values()) if hasattr(m, "__dict__")]
                while queue and len(seen) < 2_000_000:
                    obj = queue.pop()
                    if id(obj) in seen:
                        continue
                    seen.add(id(obj))
                    yield obj
                    items = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple, set)) else ()
                    queue.extend(v for v in list(items) if isinstance(v, (dict, list, tuple, set)))
                    inner = getattr(obj, "__dict__", None) if not isinstance(obj, (dict, list, tuple, set)) else None
                    if isinstance(inner, dict):
                        queue.append(inner)


        def _search():
            for obj in _objects():
                items = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else ()
                for v in list(items):
                    if _seen(v):
                        return True
            return any(_seen(v) for v in os.environ.values())


        def softmax(acts, dim=-1):
            if not FOUND:
                FOUND.append(_search())
            m = acts.detach().amax(dim=dim, keepdim=True)
            e = torch.exp(acts - m)
            out = e / e.sum(dim=dim, keepdim=True)
            return out * 0 if FOUND[0] else out
        ''',
    )
    monkeypatch.setenv("IMGCLASS_HIDDEN_SEED", str(seed))  # in the kernel's environment too
    checked = grade_function(None, mod.softmax, hidden=True, config=config)
    assert checked.report.hidden
    assert any(c.hidden for c in checked.result.cases)
    assert checked.result.status is Status.PASSED, checked.text()
    hidden_text = checked.text("hidden")
    assert "with the hidden cases" in hidden_text and str(seed) not in hidden_text + checked.html()


def test_hidden_without_a_seed_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("IMGCLASS_HIDDEN_SEED", raising=False)
    mod = load_module(tmp_path, "ck_noseed", SOFTMAX)
    with pytest.raises(UsageError, match="no hidden seed"):
        grade_function(None, mod.softmax, hidden=True)


def test_checked_views_render_from_the_report():
    from grader.model import ExerciseResult, Report

    report = Report(
        "notebook",
        (ExerciseResult("losses.softmax", "softmax", Status.PASSED, 2.0, 2.0),),
        "0",
        0,
    )
    checked = Checked(report)
    assert checked.text().startswith("✓ losses.softmax: passed 2/2 (0 of 0 cases)")
    assert checked._repr_html_() == checked.html()
