"""How an exercise is declared: as data (cases, reference, checks, diagnoses, hints), not code paths.

A spec module in ``grader/specs/`` builds ``Exercise`` values from these types; the engine never
needs to know which exercise it grades.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from grader.model import Misconception, Preview
from grader.outcome import Outcome


@dataclass(frozen=True)
class Arg:
    """An argument value and the Python expression that rebuilds it (shown to students)."""

    value: Any
    recipe: str


def expr(code: str) -> Arg:
    """An argument built by evaluating ``code``: the recipe is exactly what was evaluated."""
    import grader.images  # noqa: F401  (recipes may call grader.images.*)

    namespace = {"torch": torch, "pathlib": pathlib, "grader": __import__("grader")}
    return Arg(eval(code, namespace), code)


def gen(seed: int) -> str:
    """Recipe text for a seeded generator."""
    return f"torch.Generator().manual_seed({seed})"


def literal(value: Any) -> Arg:
    """An argument given by value; the recipe is its literal form."""
    return Arg(value, show_literal(value))


def show_literal(value: Any) -> str:
    """Python source that rebuilds a literal argument."""
    if isinstance(value, torch.Tensor):
        dtype = "" if value.dtype in (torch.float32, torch.int64) else f", dtype={value.dtype}"
        return f"torch.tensor({_nested(value)}{dtype})"
    if isinstance(value, pathlib.PurePath):
        return f"pathlib.Path({str(value)!r})"
    if isinstance(value, slice):
        parts = [value.start, value.stop] + ([value.step] if value.step is not None else [])
        return f"slice({', '.join(repr(p) for p in parts)})"
    return repr(value)


def _nested(t: torch.Tensor) -> str:
    """Shortest text that rebuilds the tensor's values exactly (float32 values shown as float32)."""
    if t.dim() == 0:
        v = t.item()
        if t.dtype is torch.float32:
            return np.format_float_positional(np.float32(v), unique=True, trim="0")
        return repr(v)
    return "[" + ", ".join(_nested(x) for x in t) + "]"


@dataclass(frozen=True)
class Call:
    """One concrete call of the student's function."""

    args: tuple[Arg, ...]
    kwargs: tuple[tuple[str, Arg], ...] = ()
    grad_wrt: int | None = None  #: check the gradient w.r.t. this positional argument
    grad_output: Arg | None = None  #: the upstream gradient (None: ones, for scalar outputs)

    @property
    def values(self) -> tuple[Any, ...]:
        return tuple(a.value for a in self.args)

    @property
    def kwvalues(self) -> dict[str, Any]:
        return {k: a.value for k, a in self.kwargs}

    def recipe(self, func: str) -> str:
        parts = [a.recipe for a in self.args] + [f"{k}={a.recipe}" for k, a in self.kwargs]
        return f"{func}({', '.join(parts)})"

    def tensors(self) -> list[torch.Tensor]:
        return [a.value for a in self.args if isinstance(a.value, torch.Tensor)]


def call(
    *args: Arg | Any, grad_wrt: int | None = None, grad_output: Arg | None = None, **kwargs: Arg | Any
) -> Call:
    """Build a Call; plain values are shown as literals."""

    def wrap(a: Any) -> Arg:
        return a if isinstance(a, Arg) else literal(a)

    return Call(
        args=tuple(wrap(a) for a in args),
        kwargs=tuple((k, wrap(v)) for k, v in kwargs.items()),
        grad_wrt=grad_wrt,
        grad_output=grad_output,
    )


@dataclass(frozen=True)
class CaseSpec:
    """A case template: ``build(seed)`` makes the concrete call from a per-case seed."""

    id: str  #: stable, e.g. ``large-logits``
    label: str  #: what a student understands, e.g. "large logits (overflow trap)"
    build: Callable[[int], Call]
    weight: float = 1.0
    random: bool = True  #: a hidden seed makes a hidden variant of this case
    expected: Callable[[Call], Any] | None = None  #: a fixed expectation (e.g. the lesson's printed numbers)
    atol: float | None = None  #: absolute tolerance for a fixed expectation
    showcase: bool = False  #: used for the exercise's figures


@dataclass(frozen=True)
class Failure:
    """Why a case did not pass: a summary line first, then details."""

    message: str
    details: tuple[str, ...] = ()
    got: Preview | None = None
    expected: Preview | None = None


#: A check compares the student's outcome with the expected one within the case's tolerance:
#: ``None`` when it passes.
Check = Callable[[Outcome, Outcome, Call, "Tolerance"], Failure | None]


@dataclass(frozen=True)
class Diagnosis:
    """A known misconception and how to recognise it.

    ``variant`` computes what a student holding the misconception returns (or raises) for a call; the
    misconception is named when the student's outputs agree with it on every case it applies to and
    it explains at least one failure. ``detect`` recognises it from one failing case instead.
    """

    info: Misconception
    variant: Callable[..., Any] | None = None
    detect: Callable[[Outcome, Outcome, Call], bool] | None = None
    applies: Callable[[Call], bool] | None = None  #: restrict the variant to some calls


@dataclass(frozen=True)
class Tolerance:
    """``|got - expected| <= atol + rtol * |expected|`` elementwise."""

    rtol: float
    atol: float


def _finite_absmax(t: Any) -> float:
    """Largest finite |value| of a floating tensor (0 for anything else)."""
    if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.numel() == 0:
        return 0.0
    return float(t.detach().abs().nan_to_num(nan=0.0, posinf=0.0).max())


def float_tolerance(
    call: Call, expected: Any, *, k: float = 128.0, scale_by_input: bool = False
) -> Tolerance:
    """Tolerance that grows with the dtype's epsilon and, optionally, the size of the inputs.

    A right ``x - (m + log Σ)`` at activations of 1e4 in float32 is ~1e-3 off PyTorch's result,
    so log-space outputs scale with the largest input; probabilities need only the dtype.
    """
    dtype = (
        expected.dtype
        if isinstance(expected, torch.Tensor) and expected.is_floating_point()
        else torch.float32
    )
    eps = torch.finfo(dtype).eps
    scale = max(1.0, _finite_absmax(expected))
    if scale_by_input:
        for t in call.tensors():
            scale = max(scale, _finite_absmax(t))
    return Tolerance(rtol=k * eps, atol=k * eps * scale)


@dataclass(frozen=True)
class Exercise:
    """One student function, declared once."""

    id: str  #: ``module.function``
    module: str  #: the student's module (file ``exercises/<module>.py``)
    func: str
    title: str
    points: float
    reference: Callable[..., Any]  #: PyTorch's own op (or a reference labeller), run in the parent
    cases: tuple[CaseSpec, ...]
    checks: tuple[Check, ...]
    diagnoses: tuple[Diagnosis, ...] = ()
    forbidden: Mapping[str, str] = field(default_factory=dict)  #: aten op name -> what the student called
    hints: tuple[str, ...] = ()
    tolerance: Callable[[Call, Any], Tolerance] = float_tolerance
    figures: Callable[..., tuple[Any, ...]] | None = None  #: (planned cases, outcomes, images) -> Figures

    @property
    def misconceptions(self) -> tuple[Misconception, ...]:
        return tuple(d.info for d in self.diagnoses)
