"""Importing torch ~0.1 s sooner: one label torch computes at import is computed without reading files.

While torch imports, it registers ~115 operators, and for each it labels where the registration
happened with ``torch._library.utils.get_source``, which calls ``inspect.getframeinfo``: that
reads the caller's source file and scans ``sys.modules``, about 0.1 s in a process that has
imported the grader's command line first (every ``grade`` command). The replacement gives the same
``"<file>:<line>"`` from the frame itself. It is installed only while torch is not imported yet,
takes effect when that module loads, and removes itself; if torch no longer has the function, or
it takes other arguments, nothing is changed.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec, PathFinder
from types import ModuleType
from typing import Any

TARGET = "torch._library.utils"


def get_source(stacklevel: int) -> str:
    """``torch._library.utils.get_source``: ``"<file>:<line>"`` of the caller ``stacklevel`` frames up."""
    frame = sys._getframe(stacklevel)
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def _replaceable(original: Any) -> bool:
    try:
        return list(inspect.signature(original).parameters) == ["stacklevel"]
    except (TypeError, ValueError):
        return False


class _Finder(MetaPathFinder):
    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name != TARGET:
            return None
        uninstall()
        spec = PathFinder.find_spec(name, path)
        loader = getattr(spec, "loader", None)
        exec_module = getattr(loader, "exec_module", None)
        if spec is None or exec_module is None:
            return spec

        def exec_and_patch(module: ModuleType) -> None:
            exec_module(module)
            if _replaceable(getattr(module, "get_source", None)):
                module.get_source = get_source  # type: ignore[attr-defined]

        loader.exec_module = exec_and_patch  # type: ignore[union-attr]
        return spec


_FINDER = _Finder()


def install() -> None:
    """Before torch is imported: have its ``get_source`` replaced when it loads (once)."""
    if TARGET not in sys.modules and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def uninstall() -> None:
    while _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
