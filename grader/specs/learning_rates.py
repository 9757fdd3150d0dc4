"""Spec of ``exercises/learning_rates.py``: the LR finder's suggestions and discriminative learning rates.

The references re-implement fastai's documented behaviour:

- ``minimum`` (fastai/callback/schedule.py): the learning rate at the lowest loss (``argmin``: the
  first one on a tie), divided by 10.
- ``steep``: slopes ``(loss[i+1] - loss[i]) / (log lr[i+1] - log lr[i])``; the learning rate at the
  left end (``lrs[i]``) of the most negative slope (``argmin``: the first on a tie).
- ``Optimizer.set_hyper`` (fastai/optimizer.py) with fastcore's ``even_mults``: a float is used for
  every group; ``slice(None, hi)`` gives ``hi/10`` to every group but the last, which gets ``hi``;
  ``slice(lo, hi)`` gives ``lo * (hi/lo) ** (i/(n-1))`` for group ``i`` (and ``hi`` alone for one group).
"""

from __future__ import annotations

from typing import Any

import torch

import grader.simulate  # noqa: F401  (recipes call grader.simulate.*)
from grader.explain import check_floats, check_unmutated
from grader.model import Misconception
from grader.spec import Arg, Call, CaseSpec, Diagnosis, Exercise, Tolerance, call, expr

#: Suggestions pick one of the given learning rates (neighbours differ by ~20%); group rates are
#: computed, so a different but right formula differs by rounding only.
SUGGESTION_TOL = Tolerance(rtol=1e-6, atol=0.0)
GROUPS_TOL = Tolerance(rtol=1e-9, atol=0.0)

# ----------------------------------------------------------------------------- references


def _steepest(lrs: torch.Tensor, losses: torch.Tensor, x: torch.Tensor) -> float:
    slopes = torch.diff(losses) / torch.diff(x)
    return float(lrs[int(torch.argmin(slopes))])


def ref_lr_suggestions(lrs: torch.Tensor, losses: torch.Tensor) -> tuple[float, float]:
    lr_min = float(lrs[int(torch.argmin(losses))]) / 10
    return lr_min, _steepest(lrs, losses, torch.log(lrs))


def ref_lrs_for_groups(lr: float | slice, n_groups: int) -> list[float]:
    if not isinstance(lr, slice):
        return [float(lr)] * n_groups
    if lr.start is None:
        return [lr.stop / 10] * (n_groups - 1) + [float(lr.stop)]
    if n_groups == 1:
        return [float(lr.stop)]
    ratio = lr.stop / lr.start
    return [lr.start * ratio ** (i / (n_groups - 1)) for i in range(n_groups)]


# ----------------------------------------------------------------------------- variants


def _min_not_divided(lrs: torch.Tensor, losses: torch.Tensor) -> tuple[float, float]:
    return float(lrs[int(torch.argmin(losses))]), ref_lr_suggestions(lrs, losses)[1]


def _steep_linear_lr(lrs: torch.Tensor, losses: torch.Tensor) -> tuple[float, float]:
    return ref_lr_suggestions(lrs, losses)[0], _steepest(lrs, losses, lrs)


def _linear_spacing(lr: float | slice, n_groups: int) -> list[float]:
    if isinstance(lr, slice) and lr.start is not None and n_groups > 1:
        step = (lr.stop - lr.start) / (n_groups - 1)
        return [lr.start + step * i for i in range(n_groups)]
    return ref_lrs_for_groups(lr, n_groups)


def _groups_off_by_one(lr: float | slice, n_groups: int) -> list[float]:
    """Exponents i/n instead of i/(n-1): the last group never reaches hi."""
    if isinstance(lr, slice) and lr.start is not None:
        return [lr.start * (lr.stop / lr.start) ** (i / n_groups) for i in range(n_groups)]
    return ref_lrs_for_groups(lr, n_groups)


def _no_tenth(lr: float | slice, n_groups: int) -> list[float]:
    if isinstance(lr, slice) and lr.start is None:
        return [float(lr.stop)] * n_groups
    return ref_lrs_for_groups(lr, n_groups)


# ----------------------------------------------------------------------------- cases


def f64(values: list[float]) -> Arg:
    return expr(f"torch.tensor({values!r}, dtype=torch.float64)")


def fixed(id: str, label: str, *args: Any) -> CaseSpec:
    return CaseSpec(id, label, lambda s: call(*args), random=False)


def run(**kw: Any) -> Any:
    """A simulated lr_find run from the case seed."""
    extra = "".join(f", {k}={v!r}" for k, v in kw.items())

    def build(s: int) -> Call:
        seed = s % 1_000_000
        return call(
            expr(f"grader.simulate.finder_lrs({seed}{extra})"),
            expr(f"grader.simulate.finder_losses({seed}{extra})"),
        )

    return build


DECADES = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]

SUGGESTION_CASES = (
    fixed("tiny", "5 points, one per decade", f64(DECADES), f64([2.0, 1.5, 0.8, 0.6, 3.0])),
    fixed(
        "flat-start",
        "a flat start, then a fall and a blow-up",
        f64([1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]),
        f64([3.6, 3.6, 3.55, 3.1, 2.0, 1.4, 2.5, 9.0]),
    ),
    fixed(
        "tied-minimum",
        "the lowest loss twice: the first one counts",
        f64(DECADES),
        f64([2.0, 1.2, 0.5, 0.5, 4.0]),
    ),
    fixed(
        "half-decades",
        "learning rates ×√10 apart",
        f64([1e-4, 3.1622776601683795e-4, 1e-3, 3.1622776601683795e-3, 1e-2, 3.1622776601683795e-2]),
        f64([2.3, 2.2, 1.9, 1.0, 0.9, 1.8]),
    ),
    fixed(
        "two-points",
        "only two points",
        f64([1e-3, 1e-2]),
        f64([1.0, 0.5]),
    ),
    CaseSpec("run", "a simulated lr_find run (stopped when the loss passed 4× its best)", run()),
    CaseSpec("noisy-run", "a noisy lr_find run", run(noise=0.1)),
    CaseSpec("no-divergence", "a run that never diverged (all 100 mini-batches)", run(diverge=False)),
    CaseSpec("another-run", "another simulated run", run(noise=0.05)),
)

LR_SUGGESTIONS = Exercise(
    id="learning_rates.lr_suggestions",
    module="learning_rates",
    func="lr_suggestions",
    title="lr_suggestions(lrs, losses)",
    points=2,
    reference=ref_lr_suggestions,
    cases=SUGGESTION_CASES,
    checks=(check_floats, check_unmutated),
    tolerance=lambda c, e: SUGGESTION_TOL,
    diagnoses=(
        Diagnosis(
            Misconception(
                "lr-min-forgot-divide-by-10",
                "lr_min not divided by 10",
                "You returned the learning rate AT the lowest loss. There the loss is about to blow up; "
                "the rule is one order of magnitude less.",
                "lr_min = (learning rate at the lowest loss) / 10",
            ),
            variant=_min_not_divided,
        ),
        Diagnosis(
            Misconception(
                "lr-steep-linear-lr",
                "slope taken against lr, not log(lr)",
                "Dividing by lr[i+1] - lr[i] makes the tiny first steps look steepest: the learning rates "
                "grow ×10 per decade, so the x axis must be log(lr).",
                "slope_i = (loss[i+1] - loss[i]) / (log(lr[i+1]) - log(lr[i]))",
            ),
            variant=_steep_linear_lr,
        ),
    ),
    hints=(
        "Two numbers: the learning rate at the lowest loss (then / 10), and the learning rate where the "
        "curve on the log-scale plot falls fastest.",
        "torch.argmin gives the index of the lowest loss (the first on a tie); for the slopes, difference "
        "neighbouring losses and neighbouring log learning rates, and take the most negative.",
        "lr_min = lrs[losses.argmin()].item() / 10; slopes = (losses[1:] - losses[:-1]) / "
        "(lrs[1:].log() - lrs[:-1].log()); lr_steep = lrs[slopes.argmin()].item()",
    ),
)


def _random_slice(s: int) -> Call:
    g = torch.Generator().manual_seed(s)
    lo_exp = float(torch.empty(1).uniform_(-7, -4, generator=g))
    span = float(torch.empty(1).uniform_(1, 3, generator=g))
    n = int(torch.randint(3, 9, (1,), generator=g))
    lo = float(f"{10**lo_exp:.3g}")
    hi = float(f"{10 ** (lo_exp + span):.3g}")
    return call(slice(lo, hi), n)


def _random_stop(s: int) -> Call:
    g = torch.Generator().manual_seed(s)
    hi = float(f"{10 ** float(torch.empty(1).uniform_(-5, -1, generator=g)):.3g}")
    return call(slice(None, hi), int(torch.randint(2, 7, (1,), generator=g)))


GROUP_CASES = (
    fixed("float", "a float: the same for every group", 1e-3, 3),
    fixed("stop-only", "slice(None, hi): hi for the last group, hi/10 for the others", slice(None, 1e-3), 3),
    fixed("fine-tune", "fine_tune's unfrozen stage: slice(1e-5, 1e-3), 3 groups", slice(1e-5, 1e-3), 3),
    fixed("book", "the book's slice(1e-6, 1e-4), 4 groups", slice(1e-6, 1e-4), 4),
    fixed("two-groups", "slice(lo, hi) with 2 groups: just lo and hi", slice(1e-4, 1e-2), 2),
    fixed("five-groups", "slice(3e-5, 2e-3), 5 groups (not whole decades)", slice(3e-5, 2e-3), 5),
    fixed("one-group-slice", "one group, slice(lo, hi): nothing to spread, hi", slice(1e-5, 1e-3), 1),
    fixed("one-group-stop", "one group, slice(None, hi)", slice(None, 1e-2), 1),
    fixed("stop-only-6", "slice(None, hi) with 6 groups", slice(None, 3e-3), 6),
    fixed("float-one-group", "a float, one group", 0.01, 1),
    CaseSpec("random-slice", "a random slice(lo, hi)", _random_slice),
    CaseSpec("random-stop", "a random slice(None, hi)", _random_stop),
)

LRS_FOR_GROUPS = Exercise(
    id="learning_rates.lrs_for_groups",
    module="learning_rates",
    func="lrs_for_groups",
    title="lrs_for_groups(lr, n_groups)",
    points=2,
    reference=ref_lrs_for_groups,
    cases=GROUP_CASES,
    checks=(check_floats,),
    tolerance=lambda c, e: GROUPS_TOL,
    diagnoses=(
        Diagnosis(
            Misconception(
                "lr-groups-linear-spacing",
                "evenly spaced instead of multiplicatively",
                "slice(1e-5, 1e-3) over 3 groups is [1e-5, 1e-4, 1e-3] (×10 each), not [1e-5, 5.05e-4, 1e-3]: "
                "your middle groups get nearly the top rate.",
                "Space the rates evenly on a log scale: each one is the previous times (hi/lo)**(1/(n-1)).",
            ),
            variant=_linear_spacing,
        ),
        Diagnosis(
            Misconception(
                "lr-groups-off-by-one",
                "the last group does not get hi",
                "With n groups there are n - 1 steps from lo to hi; dividing by n stops one step short, so "
                "the last group never reaches hi.",
                "Group i gets lo * (hi/lo) ** (i / (n_groups - 1)); check that the last one is hi.",
            ),
            variant=_groups_off_by_one,
        ),
        Diagnosis(
            Misconception(
                "lr-groups-forgot-divide-by-10",
                "slice(None, hi) gives hi to every group",
                "slice(hi) means: hi for the last group (the head) and hi/10 for all the others.",
                "[hi / 10] * (n_groups - 1) + [hi]",
            ),
            variant=_no_tenth,
        ),
    ),
    hints=(
        "Three cases: a float (the same everywhere), slice(None, hi) (hi/10 then hi), slice(lo, hi) "
        "(from lo to hi, multiplying by the same factor each time).",
        "For slice(lo, hi) with n groups there are n - 1 steps, each a factor (hi/lo) ** (1/(n-1)); one group "
        "gets hi. Return a list of Python floats.",
        "[lo * (hi / lo) ** (i / (n_groups - 1)) for i in range(n_groups)] for slice(lo, hi); "
        "[hi / 10] * (n_groups - 1) + [hi] for slice(None, hi)",
    ),
)

EXERCISES = (LR_SUGGESTIONS, LRS_FOR_GROUPS)
