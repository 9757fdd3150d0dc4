"""The parent's static review scan (grader.static): silent on ordinary code, loud on tampering tools."""

from __future__ import annotations

import ast

import pytest
from conftest import ROOT, ZOO

from grader import static
from grader.static import MAX_FLAGS, review, scan
from grader.submission import read_submission

MODULES = ("regex_labels", "presizing", "losses", "interpretation", "learning_rates")
# Zoo files that reach for a tamperer's tools on purpose (crash, forbidden-call and exit tests).
ZOO_FLAGGED = {"crash_segfault.py", "forbidden_getattr.py", "os_exit_at_import.py"}


@pytest.mark.parametrize("path", sorted((ROOT / "solutions").glob("*.py")), ids=lambda p: p.name)
def test_the_reference_solutions_are_never_flagged(path) -> None:
    assert scan(path.read_text()) == []


@pytest.mark.parametrize("path", sorted(ZOO.glob("*.py")), ids=lambda p: p.name)
def test_the_zoo_is_flagged_only_where_it_tampers(path) -> None:
    assert bool(scan(path.read_text())) == (path.name in ZOO_FLAGGED)


def test_the_scan_walks_the_tree_in_node_visitor_order() -> None:
    """The scan's own walk (faster) meets every node ast.NodeVisitor would, in the same order: an
    import is known before the attributes after it, and the first flag of a line wins."""

    class Order(ast.NodeVisitor):
        def __init__(self) -> None:
            self.seen: list[ast.AST] = []

        def generic_visit(self, node: ast.AST) -> None:
            if not isinstance(node, static._LEAVES):
                self.seen.append(node)
            super().generic_visit(node)

    paths = [*(ROOT / "grader").rglob("*.py"), *ZOO.glob("*.py"), *(ROOT / "tests" / "attacks").rglob("*.py")]
    assert len(paths) > 100
    for path in paths:
        try:
            tree = ast.parse(path.read_text())
        except SyntaxError:  # the zoo's syntax-error submission
            continue
        order = Order()
        order.visit(tree)
        assert list(static._walk(tree)) == order.seen, path


def test_notebooks_and_stubs_are_not_flagged() -> None:
    for path in (ZOO / "notebook_all.ipynb", ROOT / "exercises"):
        assert review(read_submission(path, MODULES)) == ()


@pytest.mark.parametrize(
    ("code", "needle"),
    [
        ("import sys\nf = sys._getframe()\n", "frame introspection"),
        ("def f(g):\n    return g.__closure__\n", "closure introspection"),
        ("import gc\n", "reaches every object"),
        ("from ctypes import CDLL\n", "raw memory access"),
        ("import torch\ntorch.allclose = lambda *a: True\n", "assigns to torch.allclose"),
        ("import torch.nn.functional as F\nF.cross_entropy = None\n", "assigns to F.cross_entropy"),
        ("import sys\nsys.modules['grader.engine'] = None\n", "assigns to sys.modules"),
        ("import torch\nx = torch._C._nn\n", "torch internals"),
        ("from torch.utils._python_dispatch import _disable_current_modes\n", "dispatch-mode internals"),
        ("import os\nos.write(3, b'x')\n", "raw file descriptors"),
        ("from os import fork\n", "os.fork"),
        ("exec('x = 1')\n", "calls exec()"),
        ("import torch\nf = getattr(torch, 'soft' + 'max')\n", "computed name"),
        ("import torch\nclass T(torch.Tensor):\n    pass\n", "subclasses torch.Tensor"),
        ("import threading\n", "threads"),
        ("import grader.wire\n", "the grader's own modules"),
        ("import torch\nop = torch.ops.aten.softmax\n", "torch's operator objects"),
        ("setattr(object, 'x', 1)\n", "calls setattr()"),
    ],
)
def test_tampering_tools_are_flagged(code: str, needle: str) -> None:
    flags = scan(code)
    assert flags and any(needle in what for _, what in flags), flags


@pytest.mark.parametrize(
    "code",
    [
        "import torch\nimport torch.nn.functional as F\ndef f(x):\n    return F.relu(x).sum(dim=-1)\n",
        "import math, re, os\nname = os.path.basename('a/b_1.jpg')\nm = re.fullmatch(r'(.+)_\\d+', name)\n",
        "import torch\nclass Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.w = 1\n",
        "def f(x):\n    x.requires_grad_(True)\n    y = x\n    y.grad = None\n    return getattr(x, 'shape')\n",
        "import numpy as np\nfrom pathlib import Path\np = Path('x')\n",
        "def f(:\n",  # not Python at all: the syntax error is reported elsewhere
    ],
)
def test_ordinary_code_is_not_flagged(code: str) -> None:
    assert scan(code) == []


def test_flags_are_capped_and_name_the_file_and_line(tmp_path) -> None:
    path = tmp_path / "many.py"
    path.write_text("".join(f"import gc as g{i}\n" for i in range(MAX_FLAGS + 5)))
    lines = review(read_submission(path, MODULES))
    assert len(lines) == MAX_FLAGS + 1 and lines[-1] == "review: and 5 more"
    assert lines[0] == "review: many.py, line 1: imports gc: reaches every object in the process"
