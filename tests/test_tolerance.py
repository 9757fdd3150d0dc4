"""Tolerances grow with the dtype and the input scale: right formulas pass, near misses do not.
Uses the fast in-process path (grader.testing.run_exercise)."""

from __future__ import annotations

import pytest
import torch

from grader.model import Status
from grader.testing import run_exercise


def log_softmax_other_order(acts, dim=-1):
    m = acts.max(dim=dim, keepdim=True).values
    return acts - (m + (acts - m).exp().sum(dim=dim, keepdim=True).log())


def test_mathematically_right_log_softmax_passes_at_1e4_in_float32():
    result = run_exercise("losses.log_softmax", log_softmax_other_order)
    assert result.status is Status.PASSED, result.message
    huge = next(c for c in result.cases if c.id == "huge-logits")
    assert huge.status is Status.PASSED


def test_cross_entropy_through_that_log_softmax_passes():
    def cross_entropy(acts, targets, reduction="mean"):
        losses = -log_softmax_other_order(acts, dim=1)[torch.arange(len(targets)), targets]
        return {"none": losses, "mean": losses.mean(), "sum": losses.sum()}[reduction]

    assert run_exercise("losses.cross_entropy", cross_entropy).status is Status.PASSED


def test_a_near_miss_fails():
    def softmax(acts, dim=-1):
        e = (acts - acts.max(dim=dim, keepdim=True).values).exp()
        return e / e.sum(dim=dim, keepdim=True) * (1 + 1e-3)

    result = run_exercise("losses.softmax", softmax)
    assert result.status is Status.FAILED
    assert "values differ" in result.message


def test_float64_inputs_are_held_to_float64_precision():
    def softmax(acts, dim=-1):
        e = (acts.float() - acts.float().max(dim=dim, keepdim=True).values).exp()
        return (e / e.sum(dim=dim, keepdim=True)).to(acts.dtype)

    result = run_exercise("losses.softmax", softmax)
    f64 = next(c for c in result.cases if c.id == "float64")
    assert f64.status is Status.FAILED
    assert next(c for c in result.cases if c.id == "random-4x3").status is Status.PASSED


def test_wrong_dtype_and_shape_are_explained_before_values():
    result = run_exercise(
        "losses.softmax", lambda acts, dim=-1: torch.softmax(acts.double(), dim).float()[..., None]
    )
    assert result.status is Status.FORBIDDEN
    result = run_exercise(
        "losses.nll_loss",
        lambda lp, t, reduction="mean": (
            (-lp[torch.arange(len(t)), t]).mean(0, keepdim=True)
            if reduction == "mean"
            else -lp[torch.arange(len(t)), t]
        ),
    )
    mean_case = next(c for c in result.cases if c.id == "mean")
    assert mean_case.message == "shape (1,), expected ()"
    assert "0-dim" in mean_case.details[0]


@pytest.mark.parametrize("bytes_first", ["small results", "every result"])
def test_the_fast_all_close_agrees_with_the_mask_it_stands_for(bytes_first, monkeypatch):
    """Both orders of the quick check (large results: bytes, then the largest difference; small
    ones: the tolerance, then bytes) agree with the mask, nan, inf and -0.0 included."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from grader import explain
    from grader.explain import all_close, close_mask
    from grader.spec import Tolerance

    if bytes_first == "every result":
        monkeypatch.setattr(explain, "_BYTES_FIRST", 0)

    special = st.sampled_from([0.0, -0.0, 1e-8, 1.0, -1.0, 1e30, float("nan"), float("inf"), float("-inf")])
    numbers = st.one_of(st.floats(-10, 10, allow_nan=False, width=32), special)

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(
            st.tuples(numbers, numbers, st.sampled_from([0.0, 1e-7, 1e-3, 0.5])), min_size=0, max_size=6
        ),
        st.sampled_from([torch.float32, torch.float64, torch.float16, torch.int64]),
        st.sampled_from([0.0, 1e-6, 1e-2]),
        st.sampled_from([0.0, 1e-5, 1e-1]),
    )
    def agree(pairs, dtype, atol, rtol):
        got = torch.tensor([a for a, _, _ in pairs], dtype=torch.float64)
        # the expected values: the same, nudged, or independent
        exp = torch.tensor([b if n == 0.5 else a + n for a, b, n in pairs], dtype=torch.float64)
        if dtype == torch.int64:
            got, exp = got.nan_to_num(0, 9, -9), exp.nan_to_num(0, 9, -9)
        got, exp = got.to(dtype), exp.to(dtype)
        tol = Tolerance(rtol=rtol, atol=atol)
        assert all_close(got, exp, tol) == bool(close_mask(got, exp, tol).all())

    agree()


def test_the_first_mismatch_and_the_largest_difference_are_found_as_nonzero_would():
    """compare_tensor finds "first at" and "largest difference at" with argmax, not a list of
    every index: the same index as ``nonzero()[0]``, ties to the first in row-major order."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from grader.explain import _first, _unravel

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(st.integers(1, 4), min_size=1, max_size=4),
        st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0]), min_size=1, max_size=256),
    )
    def same(shape, values):
        n = 1
        for size in shape:
            n *= size
        diff = torch.tensor((values * n)[:n], dtype=torch.float64).reshape(shape)
        assert _unravel(int(diff.reshape(-1).argmax()), diff.shape) == tuple(
            (diff == diff.max()).nonzero()[0].tolist()
        )
        mask = diff > 0.7
        if bool(mask.any()):
            assert _first(mask) == tuple(mask.nonzero()[0].tolist())

    same()


def test_a_value_that_is_not_finite_is_named_by_each_kind_it_takes():
    from grader.explain import compare_tensor
    from grader.spec import Tolerance

    exp = torch.ones(2, 3)
    got = torch.tensor([[1.0, float("nan"), float("inf")], [float("nan"), 1.0, float("-inf")]])
    failure = compare_tensor(got, exp, Tolerance(rtol=1e-5, atol=1e-6))
    assert failure is not None
    assert failure.message == "4 / 6 values are -inf/inf/nan where finite values were expected"
    assert failure.details[0] == "first at (0, 1): got nan, expected 1.0000"
