"""Importing torch after the grader: torch's import-time source labels, computed without reading files."""

from __future__ import annotations

from conftest import run_python


def _run(code: str) -> str:
    out = run_python(code)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_torch_imported_after_the_grader_gets_the_cheap_get_source():
    out = _run(
        "import sys, grader, torch\n"
        "from torch._library import utils\n"
        "from grader import torchimport\n"
        "print(utils.get_source is torchimport.get_source, torchimport._FINDER in sys.meta_path)\n"
    )
    assert out == "True False"  # replaced, and the finder is gone


def test_the_cheap_get_source_gives_torchs_label():
    out = _run(
        "import torch\n"
        "from torch._library.utils import get_source as torchs\n"
        "from grader import torchimport\n"  # torch came first: nothing is replaced
        "def caller(level):\n"
        "    return torchs(level), torchimport.get_source(level)\n"
        "a, b = caller(1)\n"
        "c, d = caller(2)\n"
        "print(torchs is not torchimport.get_source, a == b, c == d, a)\n"
    )
    replaced_nothing, same_1, same_2, label = out.split(" ", 3)
    assert (replaced_nothing, same_1, same_2) == ("True", "True", "True")
    assert label == "<string>:5"
