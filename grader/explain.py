"""Checks and their explanations: a summary line first, then details, then small previews.

Shapes and dtypes are compared before values; value mismatches say how many entries differ, the
largest difference and the first place they differ. Everything here runs in the trusted parent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from grader.model import Preview
from grader.outcome import Outcome, Raised, Returned, Unsupported
from grader.spec import Call, Check, Failure, Tolerance
from grader.wire import same_bytes

PREVIEW_ROWS = 4
PREVIEW_COLS = 6


# ----------------------------------------------------------------------------- formatting


def fmt_number(v: float | int | bool) -> str:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0."
    if 1e-3 <= abs(v) < 1e4:
        return f"{v:.4f}"
    return f"{v:.3e}"


def type_name(value: Any) -> str:
    if isinstance(value, Unsupported):
        return value.type_name
    if value is None:
        return "None"
    return type(value).__name__


def shape_str(shape: tuple[int, ...] | torch.Size) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def describe(value: Any, limit: int = 80) -> str:
    """A short, safe description of any decoded value."""
    try:
        if isinstance(value, torch.Tensor):
            return f"tensor {shape_str(value.shape)} {str(value.dtype).removeprefix('torch.')}"
        if isinstance(value, Unsupported):
            return f"a {value.type_name}"
        text = repr(value)
        return text if len(text) <= limit else text[: limit - 1] + "…"
    except Exception as e:  # pragma: no cover - decoded values are plain, but stay safe
        return f"(could not show this value: {type(e).__name__})"


def _index_str(idx: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(i) for i in idx) + ")" if idx else "()"


def preview(value: Any, marks: torch.Tensor | None = None, focus: tuple[int, ...] | None = None) -> Preview:
    """A small window of ``value`` (around ``focus``), with ``marks`` flagging differing entries."""
    if not isinstance(value, torch.Tensor):
        return Preview(summary=describe(value, 200))
    t = value.detach()
    summary = describe(t)
    if t.numel() == 0:
        return Preview(summary=summary, dtype=str(t.dtype).removeprefix("torch."), shape=tuple(t.shape))
    m = marks if marks is not None and marks.shape == t.shape else torch.zeros(t.shape, dtype=torch.bool)
    focus = focus or (0,) * t.dim()
    # Reduce to at most 2 dims: fix the leading indices at the focus.
    lead = focus[: max(0, t.dim() - 2)]
    for i in lead:
        t, m = t[i], m[i]
    if t.dim() == 0:
        cells: tuple[tuple[str, ...], ...] = ((fmt_number(t.item()),),)
        return Preview(
            summary, str(value.dtype).removeprefix("torch."), tuple(value.shape), cells, ((bool(m),),)
        )
    two_d = t.dim() == 2
    if not two_d:
        t, m = t.unsqueeze(0), m.unsqueeze(0)
    fr = focus[-2] if two_d and len(focus) >= 2 else 0
    fc = focus[-1] if focus else 0
    r0 = max(0, min(fr - 1, t.shape[0] - PREVIEW_ROWS))
    c0 = max(0, min(fc - 2, t.shape[1] - PREVIEW_COLS))
    rows = range(r0, min(r0 + PREVIEW_ROWS, t.shape[0]))
    cols = range(c0, min(c0 + PREVIEW_COLS, t.shape[1]))
    sub = t[r0 : rows.stop, c0 : cols.stop].tolist()
    cells = tuple(tuple(fmt_number(v) for v in row) for row in sub)
    mk = tuple(tuple(bool(v) for v in row) for row in m[r0 : rows.stop, c0 : cols.stop].tolist())
    return Preview(
        summary=summary + (f" at {_index_str(tuple(lead))}" if lead else ""),
        dtype=str(value.dtype).removeprefix("torch."),
        shape=tuple(value.shape),
        cells=cells,
        marks=mk,
        row_index=tuple(rows) if two_d else (),
        col_index=tuple(cols),
    )


# ----------------------------------------------------------------------------- comparisons


def close_mask(got: torch.Tensor, exp: torch.Tensor, tol: Tolerance) -> torch.Tensor:
    """True where ``got`` matches ``exp`` (nan matches nan, inf matches the same inf)."""
    if not (got.is_floating_point() or got.is_complex()) and not (
        exp.is_floating_point() or exp.is_complex()
    ):
        return got == exp
    # float32 results are compared in float32 (the tolerances are far above its rounding); the rest in float64
    common = torch.float32 if got.dtype == exp.dtype == torch.float32 else torch.float64
    g = got.detach().to(common)
    e = exp.detach().to(common)
    if tol.atol >= 0 and tol.rtol >= 0 and same_bytes(g, e):
        # Often so (the student made the same torch calls): then every entry matches.
        return torch.ones(g.shape, dtype=torch.bool)
    # |g - e| <= atol + rtol * |e|, computed with two temporaries instead of five (same values)
    diff = torch.sub(g, e).abs_()
    bound = e.abs().mul_(tol.rtol).add_(tol.atol)
    ok = diff <= bound  # False wherever either side is nan or inf
    if bool(ok.all()):
        return ok
    same_nonfinite = (torch.isnan(g) & torch.isnan(e)) | (torch.isinf(g) & torch.isinf(e) & (g == e))
    return ok | same_nonfinite


_NUMPY_FLOATS = (torch.float32, torch.float64)
#: from this many values on, equal bytes are looked for first (~15 us for 150,000 values, against
#: ~100 us for one pass of float arithmetic); below it the tolerance check comes first, since
#: most results within tolerance are not byte-for-byte equal and the byte check costs ~4 us
_BYTES_FIRST = 4096


def all_close(got: torch.Tensor, exp: torch.Tensor, tol: Tolerance) -> bool:
    """``bool(close_mask(got, exp, tol).all())`` for tensors of one shape and dtype, found faster.

    Most results match: equal bytes, or float32/float64 values within the tolerance, checked in
    numpy with the same operations in the same precision (each op a few microseconds, against
    torch's dozen). Anything else (nan or inf, a difference, other dtypes) takes ``close_mask``.
    """
    return _surely_close(got, exp, tol) or bool(close_mask(got, exp, tol).all())


def _surely_close(got: torch.Tensor, exp: torch.Tensor, tol: Tolerance) -> bool:
    """True when a quick check shows every value matches; False: not known (ask ``close_mask``).

    Equal bytes match (NaN where NaN is expected included); so do finite values within the
    tolerance. For large results the largest difference is looked at first: no larger than
    ``atol``, every value is within ``atol + rtol * |expected|`` (a fraction of the full check).
    """
    nonneg = tol.atol >= 0 and tol.rtol >= 0
    large = got.numel() >= _BYTES_FIRST
    if nonneg and large and same_bytes(got, exp):
        return True
    if got.dtype in _NUMPY_FLOATS and got.dtype == exp.dtype and got.shape == exp.shape:
        g, e = got.detach().numpy(), exp.detach().numpy()
        with np.errstate(all="ignore"):
            diff = np.abs(g - e)
            if nonneg and large and diff.size and diff.max() <= tol.atol:  # (nan: not <=)
                return True
            if bool(np.all(diff <= np.abs(e) * tol.rtol + tol.atol)):
                return True
    return nonneg and not large and same_bytes(got, exp)


def _first(mask: torch.Tensor) -> tuple[int, ...]:
    """The index of the first True of a boolean tensor that has one (row-major order): what
    ``mask.nonzero()[0]`` gives, without listing every True first."""
    return _unravel(int(mask.reshape(-1).to(torch.uint8).argmax()), mask.shape)


def _unravel(flat: int, shape: torch.Size) -> tuple[int, ...]:
    index: list[int] = []
    for size in reversed(shape):
        flat, i = divmod(flat, size)
        index.append(i)
    return tuple(reversed(index))


def values_close(got: Any, exp: Any, tol: Tolerance) -> bool:
    """Do two decoded values agree (recursively, within ``tol`` for floating tensors)?"""
    if isinstance(exp, torch.Tensor):
        return (
            isinstance(got, torch.Tensor)
            and got.shape == exp.shape
            and got.dtype == exp.dtype
            and all_close(got, exp, tol)
        )
    if isinstance(exp, (list, tuple)):
        return (
            type(got) is type(exp)
            and len(got) == len(exp)
            and all(values_close(g, e, tol) for g, e in zip(got, exp))
        )
    if isinstance(exp, float) and type(got) is float:
        return (
            got == exp
            or (math.isnan(got) and math.isnan(exp))
            or abs(got - exp) <= tol.atol + tol.rtol * abs(exp)
        )
    return type(got) is type(exp) and got == exp


def outcomes_agree(got: Outcome, exp: Outcome, tol: Tolerance) -> bool:
    """Does the student's outcome agree with an expected (or variant) outcome?"""
    if isinstance(exp, Raised):
        return isinstance(got, Raised) and got.is_a(exp.type)
    if isinstance(exp, Returned) and isinstance(got, Returned):
        if not values_close(got.value, exp.value, tol):
            return False
        if exp.grad is not None:
            return got.grad is not None and values_close(got.grad, exp.grad, tol)
        return True
    return False


def compare_tensor(got: Any, exp: torch.Tensor, tol: Tolerance, what: str = "") -> Failure | None:
    """Type, then shape, then dtype, then values."""
    prefix = f"{what}: " if what else ""
    if not isinstance(got, torch.Tensor):
        hint = ""
        if isinstance(got, Unsupported) and "subclass" in got.type_name:
            hint = " Return a plain torch.Tensor."
        elif isinstance(got, (float, int)) and not isinstance(got, bool):
            hint = " Keep it a tensor (no .item()), so gradients can flow."
        return Failure(
            f"{prefix}returned {describe(got)}, expected a torch.Tensor.{hint}",
            got=preview(got),
            expected=preview(exp),
        )
    if got.shape != exp.shape:
        return Failure(
            f"{prefix}shape {shape_str(got.shape)}, expected {shape_str(exp.shape)}",
            details=_shape_details(got, exp),
            got=preview(got),
            expected=preview(exp),
        )
    if got.dtype != exp.dtype:
        return Failure(
            f"{prefix}dtype {str(got.dtype).removeprefix('torch.')}, expected "
            f"{str(exp.dtype).removeprefix('torch.')} (return the same dtype as the input)",
            got=preview(got),
            expected=preview(exp),
        )
    if _surely_close(got, exp, tol):
        return None
    ok = close_mask(got, exp, tol)
    if bool(ok.all()):
        return None
    bad = ~ok
    n_bad, n = int(bad.sum()), bad.numel()
    first = _first(bad) if got.dim() else ()
    g64 = got.detach().to(torch.float64) if got.is_floating_point() else got.to(torch.float64)
    e64 = exp.detach().to(torch.float64) if exp.is_floating_point() else exp.to(torch.float64)
    details: list[str] = []
    finite_got, finite_exp = torch.isfinite(g64), torch.isfinite(e64)
    nonfinite_got = (~finite_got) & finite_exp
    if bool(nonfinite_got.any()):
        k = int(nonfinite_got.sum())
        odd = g64[nonfinite_got]  # nan, inf or -inf: which of them occur (no sort of them all)
        present = (
            bool(torch.isnan(odd).any()),
            bool((odd == math.inf).any()),
            bool((odd == -math.inf).any()),
        )
        kinds = sorted(fmt_number(v) for v, p in zip((math.nan, math.inf, -math.inf), present) if p)
        message = f"{prefix}{k} / {n} values are {'/'.join(kinds)} where finite values were expected"
    else:
        message = f"{prefix}{n_bad} / {n} values differ"
    finite = finite_got & finite_exp & bad
    if bool(finite.any()):
        diff = (g64 - e64).abs()
        diff = torch.where(finite, diff, torch.zeros_like(diff))
        # argmax: the first of equal maxima, as (diff == diff.max()).nonzero()[0] (no nan here)
        where = _unravel(int(diff.reshape(-1).argmax()), diff.shape) if got.dim() else ()
        # Relative differences only where the expected value is not (near) zero: x / 0 says nothing.
        sizable = finite & (e64.abs() > max(tol.atol, 1e-12))
        relative = ""
        if bool(sizable.any()):
            rel = (diff / e64.abs().clamp_min(1e-12))[sizable]
            relative = f" (largest relative difference {fmt_number(float(rel.max()))})"
        details.append(f"largest difference {fmt_number(float(diff.max()))} at {_index_str(where)}{relative}")
    g_first = g64[first].item() if first else g64.item()
    e_first = e64[first].item() if first else e64.item()
    details.append(f"first at {_index_str(first)}: got {fmt_number(g_first)}, expected {fmt_number(e_first)}")
    details.append(f"tolerance: |got - expected| <= {tol.atol:.1e} + {tol.rtol:.1e} * |expected|")
    return Failure(
        message,
        details=tuple(details),
        got=preview(got, bad, first),
        expected=preview(exp, bad, first),
    )


def compare_exact(got: Any, exp: torch.Tensor) -> Failure | None:
    """Type, shape, dtype, then exact equality: for integer results such as counts."""
    if not isinstance(got, torch.Tensor) or got.shape != exp.shape or got.dtype != exp.dtype:
        return compare_tensor(got, exp, Tolerance(rtol=0.0, atol=0.0))
    bad = got != exp
    if not bool(bad.any()):
        return None
    first = tuple(int(i) for i in bad.nonzero()[0].tolist()) if got.dim() else ()
    g, e = (got[first].item(), exp[first].item()) if first else (got.item(), exp.item())
    return Failure(
        f"{int(bad.sum())} / {bad.numel()} values differ",
        details=(f"first at {_index_str(first)}: got {fmt_number(g)}, expected {fmt_number(e)}",),
        got=preview(got, bad, first),
        expected=preview(exp, bad, first),
    )


def _shape_details(got: torch.Tensor, exp: torch.Tensor) -> tuple[str, ...]:
    if got.dim() == 1 and exp.dim() == 0:
        return ("expected a 0-dim tensor (a scalar): reduce with .mean() or .sum() without keepdim",)
    if got.dim() == exp.dim() + 1 and got.shape[-1] == 1:
        return ("an extra trailing dimension of size 1: keepdim=True where it should not be?",)
    if got.numel() == exp.numel():
        return ("same number of values, arranged differently",)
    return ()


# ----------------------------------------------------------------------------- checks


def check_raises(got: Outcome, exp: Outcome, call: Call, tol: Tolerance) -> Failure | None:
    """When the reference raises, the student must raise the same kind of exception."""
    if not isinstance(exp, Raised):
        return None
    if isinstance(got, Raised):
        if got.is_a(exp.type):
            return None
        return Failure(f"raised {got.type}, expected {exp.type}", details=(f"your message: {got.headline}",))
    if isinstance(got, Returned):
        return Failure(f"returned {describe(got.value)}, expected it to raise {exp.type}")
    return Failure(f"expected it to raise {exp.type}")


def check_tensor(got: Outcome, exp: Outcome, call: Call, tol: Tolerance) -> Failure | None:
    """Type, shape, dtype and values of a tensor result."""
    if not (isinstance(got, Returned) and isinstance(exp, Returned)):
        return None
    return compare_tensor(got.value, exp.value, tol)


def check_grad(tolerance: Callable[[Call, Any], Tolerance]) -> Check:
    """The gradient w.r.t. the checked input matches the reference's gradient (gradient tolerance)."""

    def check(got: Outcome, exp: Outcome, call: Call, tol: Tolerance) -> Failure | None:
        if not (isinstance(got, Returned) and isinstance(exp, Returned)) or exp.grad is None:
            return None
        if got.grad_error is not None:
            return Failure(f"gradients do not flow back to the input: {got.grad_error}")
        return compare_tensor(got.grad, exp.grad, tolerance(call, exp.grad), what="gradient")

    return check


def check_exact_tensor(got: Outcome, exp: Outcome, call: Call, tol: Tolerance) -> Failure | None:
    """A tensor result that must match exactly (integer counts): no tolerance to explain."""
    if not (isinstance(got, Returned) and isinstance(exp, Returned)):
        return None
    return compare_exact(got.value, exp.value)


def check_unmutated(got: Outcome, exp: Outcome, call: Call, tol: Tolerance) -> Failure | None:
    """The function must not change its input tensors in place."""
    if isinstance(got, Returned) and got.mutated:
        which = ", ".join(f"argument {i + 1}" for i in got.mutated)
        return Failure(
            f"changed its input in place ({which})",
            details=("PyTorch's functions leave their inputs alone: use x - m, not x.sub_(m) or x -= m",),
        )
    return None


def check_exact(kind: type) -> Check:
    """The result is exactly of type ``kind`` and equal to the expected value."""

    def check(got: Outcome, exp: Outcome, call: Call, tol: Tolerance) -> Failure | None:
        if not (isinstance(got, Returned) and isinstance(exp, Returned)):
            return None
        if type(got.value) is not kind:
            return Failure(
                f"returned {describe(got.value)}, expected a {kind.__name__}",
                got=preview(got.value),
                expected=preview(exp.value),
            )
        if got.value != exp.value:
            return Failure(
                f"returned {describe(got.value)}, expected {describe(exp.value)}",
                got=preview(got.value),
                expected=preview(exp.value),
            )
        return None

    return check


# ----------------------------------------------------------------------------- plain Python results


def _same(got: Any, exp: Any) -> bool:
    """Equal values of exactly the same types, recursively (``1 != 1.0 != True`` here)."""
    if type(got) is not type(exp):
        return False
    if isinstance(exp, (list, tuple)):
        return len(got) == len(exp) and all(_same(g, e) for g, e in zip(got, exp))
    return bool(got == exp)


def _types(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_types(v) for v in value[:4]) + (", …" if len(value) > 4 else "")
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    if isinstance(value, torch.Tensor):
        return "Tensor"
    return type_name(value)


def _sort_key(value: Any) -> str:
    return repr(value)


def check_items(got: Outcome, exp: Outcome, call: Call, tol: Tolerance) -> Failure | None:
    """A list whose items (tuples, strings, ints, ...) must equal the expected ones, in order and type."""
    if not (isinstance(got, Returned) and isinstance(exp, Returned)):
        return None
    g, e = got.value, exp.value
    if type(g) is not list:
        return Failure(f"returned {describe(g)}, expected a list", got=preview(g), expected=preview(e))
    if _same(g, e):
        return None
    for i, (gi, ei) in enumerate(zip(g, e)):
        if _types(gi) != _types(ei):
            return Failure(
                f"item [{i}] has the types {_types(gi)}, expected {_types(ei)}",
                details=(
                    f"got {describe(gi)}, expected {describe(ei)}",
                    "convert as you build each item (e.g. int(count), not a 0-dim tensor)",
                ),
                got=preview(g),
                expected=preview(e),
            )
    if sorted(map(_sort_key, g)) == sorted(map(_sort_key, e)):
        first = next(i for i, (gi, ei) in enumerate(zip(g, e)) if not _same(gi, ei))
        return Failure(
            "the right items in a different order",
            details=(f"first at [{first}]: got {describe(g[first])}, expected {describe(e[first])}",),
            got=preview(g),
            expected=preview(e),
        )
    missing = [x for x in e if not any(_same(x, y) for y in g)]
    extra = [x for x in g if not any(_same(x, y) for y in e)]
    details: list[str] = []
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        details.append("missing: " + ", ".join(describe(x) for x in missing[:3]) + more)
    if extra:
        more = f" (and {len(extra) - 3} more)" if len(extra) > 3 else ""
        details.append("not expected: " + ", ".join(describe(x) for x in extra[:3]) + more)
    if len(g) != len(e):
        message = f"{len(g)} item{'' if len(g) == 1 else 's'}, expected {len(e)}"
    else:
        n_bad = sum(not _same(gi, ei) for gi, ei in zip(g, e))
        message = f"{n_bad} / {len(e)} items differ"
        first = next(i for i, (gi, ei) in enumerate(zip(g, e)) if not _same(gi, ei))
        details.append(f"first at [{first}]: got {describe(g[first])}, expected {describe(e[first])}")
    return Failure(message, details=tuple(details), got=preview(g), expected=preview(e))


def check_floats(got: Outcome, exp: Outcome, call: Call, tol: Tolerance) -> Failure | None:
    """A Python float, or a list/tuple of them, equal to the expected one(s) within the tolerance."""
    if not (isinstance(got, Returned) and isinstance(exp, Returned)):
        return None
    g, e = got.value, exp.value
    scalar = isinstance(e, float)
    gs, es = ([g], [e]) if scalar else (g, e)
    if not scalar and type(g) is not type(e):
        return Failure(
            f"returned {describe(g)}, expected a {type(e).__name__} of {len(e)} floats",
            got=preview(g),
            expected=preview(e),
        )
    if len(gs) != len(es):
        return Failure(
            f"{len(gs)} values, expected {len(es)}",
            details=(f"expected {describe(e, 200)}",),
            got=preview(g),
            expected=preview(e),
        )
    for i, v in enumerate(gs):
        if type(v) is not float:
            what = "returned" if scalar else f"value [{i}] is"
            fix = " (use float(...) or .item())" if isinstance(v, torch.Tensor) or type(v) is int else ""
            return Failure(
                f"{what} {describe(v)}, expected a Python float{fix}",
                got=preview(g),
                expected=preview(e),
            )
    bad = [i for i, (gv, ev) in enumerate(zip(gs, es)) if not values_close(gv, ev, tol)]
    if not bad:
        return None
    first = bad[0]
    at = "" if scalar else f" at [{first}]"
    return Failure(
        f"got {fmt_number(gs[0])}, expected {fmt_number(es[0])}"
        if scalar
        else f"{len(bad)} / {len(es)} values differ",
        details=(
            f"first{at}: got {fmt_number(gs[first])}, expected {fmt_number(es[first])}",
            f"tolerance: |got - expected| <= {tol.atol:.1e} + {tol.rtol:.1e} * |expected|",
        ),
        got=preview(g),
        expected=preview(e),
    )
