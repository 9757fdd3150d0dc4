"""Spec of ``exercises/losses.py``: softmax, binary softmax, log-softmax, NLL and cross-entropy."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from grader.explain import check_grad, check_tensor, check_unmutated, close_mask
from grader.model import Figure, Misconception
from grader.outcome import Outcome, Returned
from grader.spec import (
    Arg,
    Call,
    CaseSpec,
    Diagnosis,
    Exercise,
    Tolerance,
    call,
    expr,
    float_tolerance,
    gen,
    literal,
)

# The lesson notes' 6x2 example (../shared/seed): printed from unrounded activations, so the
# expected values below are compared at 1e-3.
LESSON_ACTS = [
    [-0.9916, -2.2545],
    [0.1560, -1.9368],
    [-0.6164, 1.1047],
    [-2.0798, -2.1778],
    [1.6429, -3.7728],
    [-1.2445, -2.9512],
]
LESSON_TARG = [0, 1, 0, 1, 1, 0]
LESSON_SOFTMAX = [
    [0.7795, 0.2205],
    [0.8902, 0.1098],
    [0.1517, 0.8483],
    [0.5245, 0.4755],
    [0.9956, 0.0044],
    [0.8464, 0.1536],
]
LESSON_SIGMOID_DIFF = [0.7795, 0.8902, 0.1517, 0.5245, 0.9956, 0.8464]
LESSON_NLL_OF_PROBS = [-0.7795, -0.1098, -0.1517, -0.4755, -0.0044, -0.8464]
LESSON_CE_NONE = [0.2491, 2.2091, 1.8857, 0.7434, 5.4201, 0.1667]
LESSON_CE_MEAN = 1.7790
# The book's own example: torch.manual_seed(42); acts = torch.randn((6, 2)) * 2.
BOOK_ACTS = "torch.randn(6, 2, generator=torch.Generator().manual_seed(42)) * 2"
BOOK_SOFTMAX_COL0 = [0.6025, 0.5021, 0.1332, 0.9966, 0.5959, 0.3661]
BOOK_CE_MEAN = 1.8045
GOLDEN_ATOL = 1e-3

# ----------------------------------------------------------------------------- case helpers


def randn(seed: int, *shape: int, scale: float = 1.0, dtype: torch.dtype = torch.float32) -> Arg:
    dims = ", ".join(str(s) for s in shape)
    dt = "" if dtype is torch.float32 else f", dtype={dtype}"
    mul = "" if scale == 1.0 else f" * {scale!r}"
    return expr(f"torch.randn({dims}, generator={gen(seed)}{dt}){mul}")


def log_probs(seed: int, n: int, c: int, scale: float = 2.0, dtype: torch.dtype = torch.float32) -> Arg:
    dt = "" if dtype is torch.float32 else f", dtype={dtype}"
    return expr(f"(torch.randn({n}, {c}, generator={gen(seed)}{dt}) * {scale!r}).log_softmax(dim=1)")


def targets(seed: int, n: int, c: int) -> Arg:
    return expr(f"torch.randint(0, {c}, ({n},), generator={gen(seed)})")


def grad_out(seed: int, *shape: int, dtype: torch.dtype = torch.float32) -> Arg:
    dims = ", ".join(str(s) for s in shape)
    dt = "" if dtype is torch.float32 else f", dtype={dtype}"
    return expr(f"torch.rand({dims}, generator={gen(seed)}{dt})")


def fixed(values: Any) -> Any:
    """A fixed expectation: the numbers printed in the lesson."""
    return lambda c: torch.tensor(values)


def case(
    id: str, label: str, build: Any, *, weight: float = 1.0, expected: Any = None, random: bool = True
) -> CaseSpec:
    return CaseSpec(
        id=id,
        label=label,
        build=build,
        # The lesson's printed numbers are shown and checked but not scored: copying them earns nothing.
        weight=0.0 if expected is not None else weight,
        random=random,
        expected=expected,
        atol=GOLDEN_ATOL if expected is not None else None,
    )


def prob_tol(c: Call, expected: Any) -> Tolerance:
    return float_tolerance(c, expected)


def log_tol(c: Call, expected: Any) -> Tolerance:
    return float_tolerance(c, expected, scale_by_input=True)


# ----------------------------------------------------------------------------- references


def ref_softmax(acts: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return F.softmax(acts, dim=dim)


def ref_binary_softmax(acts: torch.Tensor) -> torch.Tensor:
    return F.softmax(acts, dim=1)[:, 0]


def ref_log_softmax(acts: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return F.log_softmax(acts, dim=dim)


def ref_nll_loss(log_probs: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    return F.nll_loss(log_probs, targets, reduction=reduction)


def ref_cross_entropy(acts: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    return F.cross_entropy(acts, targets, reduction=reduction)


# ----------------------------------------------------------------------------- diagnoses


def _large_inputs(c: Call) -> bool:
    """Are there activations large enough for a naive exp to overflow in this dtype?"""
    for t in c.tensors():
        if t.is_floating_point() and t.numel():
            limit = 88.0 if t.dtype in (torch.float32, torch.float16, torch.bfloat16) else 709.0
            if float(t.abs().max()) > limit:
                return True
    return False


def _nonfinite_where_finite(got: Outcome, exp: Outcome) -> bool:
    if not (isinstance(got, Returned) and isinstance(exp, Returned)):
        return False
    g, e = got.value, exp.value
    if not (isinstance(g, torch.Tensor) and isinstance(e, torch.Tensor)) or g.shape != e.shape:
        return False
    if not g.is_floating_point():
        return False
    return bool((~torch.isfinite(g) & torch.isfinite(e)).any())


def overflow(got: Outcome, exp: Outcome, c: Call) -> bool:
    """nan/inf at large activations where PyTorch's result is finite."""
    return _large_inputs(c) and _nonfinite_where_finite(got, exp)


def other_dim(op: Any) -> Any:
    """Detects a result computed along another dimension than the one asked for."""

    def detect(got: Outcome, exp: Outcome, c: Call) -> bool:
        if not isinstance(got, Returned) or not isinstance(got.value, torch.Tensor):
            return False
        x = c.args[0].value
        asked = c.kwvalues.get("dim", -1) % x.dim()
        for d in range(x.dim()):
            if d == asked:
                continue
            alt = op(x, dim=d)
            same_kind = got.value.shape == alt.shape and got.value.dtype == alt.dtype
            if same_kind and bool(
                close_mask(got.value, alt, float_tolerance(c, alt, scale_by_input=True)).all()
            ):
                return True
        return False

    return detect


def grad_detached(got: Outcome, exp: Outcome, c: Call) -> bool:
    return isinstance(got, Returned) and got.grad_error is not None


def mutated(got: Outcome, exp: Outcome, c: Call) -> bool:
    return isinstance(got, Returned) and bool(got.mutated)


GRAD_DETACHED = Diagnosis(
    Misconception(
        "grad-detached",
        "the result is cut off from the autograd graph",
        "Your output does not depend on the input through tensor operations, so no gradient can flow back "
        "(e.g. .item(), .tolist(), numpy or torch.tensor(...) on an intermediate).",
        "Keep every step a torch operation on tensors; a loss that cannot be differentiated cannot train a model.",
    ),
    detect=grad_detached,
)
MUTATES_INPUT = Diagnosis(
    Misconception(
        "mutates-input",
        "changes its input tensor in place",
        "An in-place op such as acts.sub_(m) or acts -= m overwrote the caller's tensor; "
        "the caller's activations are now wrong for every later use.",
        "Write x = acts - m (a new tensor) instead of modifying acts.",
    ),
    detect=mutated,
)


# ----------------------------------------------------------------------------- figures (HTML reports)

#: Largest output plotted: rows x values per row.
PLOT_ROWS, PLOT_COLS = 8, 10


def rows_figure(title: str, caption: str) -> Any:
    """Figure data for an HTML plot: the student's values vs the reference, per row.

    Taken from the first failing visible case whose output is small (1-D or 2-D, at most
    PLOT_ROWS x PLOT_COLS) and finite, preferring one with several rows. Only with ``pictures``.
    """

    def figures(planned: list[Any], outcomes: list[Any], pictures: bool = True) -> tuple[Figure, ...]:
        if not pictures:
            return ()
        found: list[tuple[Any, torch.Tensor, torch.Tensor]] = []
        for pc, got in zip(planned, outcomes):
            exp = pc.expected
            if pc.hidden or not isinstance(got, Returned) or not isinstance(exp, Returned):
                continue
            g, e = got.value, exp.value
            if not isinstance(g, torch.Tensor) or not isinstance(e, torch.Tensor) or g.shape != e.shape:
                continue
            if (
                g.dim() not in (1, 2)
                or g.numel() == 0
                or not (g.is_floating_point() and e.is_floating_point())
            ):
                continue
            g2, e2 = (g.reshape(1, -1), e.reshape(1, -1)) if g.dim() == 1 else (g, e)
            if g2.shape[0] > PLOT_ROWS or g2.shape[1] > PLOT_COLS:
                continue
            if not (bool(torch.isfinite(g2).all()) and bool(torch.isfinite(e2).all())):
                continue
            if bool(close_mask(g, e, pc.tol).all()):
                continue
            found.append((pc, g2, e2))
        if not found:
            return ()
        pc, g2, e2 = next((f for f in found if f[1].shape[0] > 1), found[0])

        def rows(t: torch.Tensor) -> tuple[tuple[float, ...], ...]:
            return tuple(tuple(float(f"{v:.4g}") for v in row) for row in t.double().tolist())

        return (
            Figure(
                kind="rows",
                title=title,
                caption=f"{caption} Case: {pc.label}.",
                series=(("yours", rows(g2)), ("reference", rows(e2))),
            ),
        )

    return figures


def _naive_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    e = torch.exp(x)
    return e / e.sum(dim=dim, keepdim=True)


def _reduce(v: torch.Tensor, reduction: str) -> torch.Tensor:
    return v if reduction == "none" else v.mean() if reduction == "mean" else v.sum()


# ----------------------------------------------------------------------------- forbidden kernels

#: Other torch ops whose kernels compute a softmax (or its log) and so do an exercise's work.
SOFTMAX_ROUTES = {
    "_safe_softmax": "torch's internal softmax (_safe_softmax)",
    "_masked_softmax": "torch's masked softmax",
    "_sparse_softmax": "torch.sparse.softmax",
    "_scaled_dot_product_flash_attention_for_cpu": "F.scaled_dot_product_attention (it computes a softmax)",
}
LOG_SOFTMAX_ROUTES = {"_sparse_log_softmax": "torch.sparse.log_softmax"}

# ----------------------------------------------------------------------------- softmax


SOFTMAX = Exercise(
    id="losses.softmax",
    module="losses",
    func="softmax",
    title="softmax(acts, dim=-1)",
    points=2,
    reference=ref_softmax,
    cases=(
        case(
            "one-row", "one row of two activations", lambda s: call(torch.tensor([[1.0, 2.0]])), random=False
        ),
        case(
            "lesson-6x2",
            "the lesson's 6×2 activations (printed values)",
            lambda s: call(literal(torch.tensor(LESSON_ACTS))),
            expected=fixed(LESSON_SOFTMAX),
            random=False,
        ),
        case(
            "book-seed-42",
            "the book's torch.manual_seed(42) activations",
            lambda s: call(expr(BOOK_ACTS)),
            expected=fixed([[p, 1 - p] for p in BOOK_SOFTMAX_COL0]),
            random=False,
        ),
        case(
            "bear-3-class",
            "the book's 3-class bear example",
            lambda s: call(torch.tensor([[0.02, -2.49, 1.25]])),
            random=False,
        ),
        case("random-4x3", "random 4×3 activations", lambda s: call(randn(s, 4, 3))),
        case("dim-0", "normalise along dim=0", lambda s: call(randn(s, 3, 5), dim=0)),
        case("3d-last-dim", "3-D input, last dim", lambda s: call(randn(s, 2, 3, 4), dim=-1)),
        case("3d-middle-dim", "3-D input, dim=1", lambda s: call(randn(s, 2, 3, 4), dim=1)),
        case(
            "float64", "float64 activations", lambda s: call(randn(s, 5, 7, scale=3.0, dtype=torch.float64))
        ),
        case("tiny-scale", "tiny activations (×1e-3)", lambda s: call(randn(s, 4, 6, scale=1e-3))),
        case(
            "large-logits",
            "large activations ×100 (overflow trap)",
            lambda s: call(randn(s, 4, 6, scale=100.0)),
        ),
        case(
            "naive-nan",
            "activations 1000, 1001, 1002 (naive exp gives nan)",
            lambda s: call(torch.tensor([[1000.0, 1001.0, 1002.0]])),
            random=False,
        ),
        case("huge-logits", "huge activations ×1e4", lambda s: call(randn(s, 8, 10, scale=1e4))),
        case("pets-batch", "a batch of 64 pets × 37 breeds", lambda s: call(randn(s, 64, 37, scale=5.0))),
        case("big", "512 × 1000 activations", lambda s: call(randn(s, 512, 1000, scale=10.0))),
    ),
    checks=(check_tensor, check_unmutated),
    tolerance=prob_tol,
    diagnoses=(
        Diagnosis(
            Misconception(
                "softmax-sigmoid",
                "sigmoid instead of softmax",
                "Each activation went through a sigmoid on its own, so the rows do not sum to 1.",
                "Softmax couples the classes: exponentiate, then divide by the sum along `dim`.",
            ),
            variant=lambda x, dim=-1: torch.sigmoid(x),
        ),
        Diagnosis(
            Misconception(
                "softmax-wrong-dim",
                "normalised along the wrong dimension",
                "Your values sum to 1 along another dimension than `dim`: "
                "each class was compared with the other items of the batch.",
                "Use the `dim` argument in both the max and the sum (with keepdim=True).",
            ),
            detect=other_dim(F.softmax),
        ),
        Diagnosis(
            Misconception(
                "softmax-no-max-subtraction",
                "no max-subtraction: exp overflows",
                "exp(x) overflows to inf for large activations (above ~88 in float32), and inf/inf is nan.",
                "softmax(x) == softmax(x - c) for any c: subtract the max along `dim` before exp.",
            ),
            detect=overflow,
        ),
        MUTATES_INPUT,
    ),
    forbidden={
        "_softmax": "torch.softmax / F.softmax / Tensor.softmax",
        "_log_softmax": "log_softmax",
        **SOFTMAX_ROUTES,
        **LOG_SOFTMAX_ROUTES,
    },
    figures=rows_figure(
        "Your probabilities vs PyTorch's, per row",
        "Each panel is one row of the output: your values beside the reference's; softmax rows sum to 1.",
    ),
    hints=(
        "Softmax turns activations into probabilities: positive, and summing to 1 along `dim`.",
        "exp makes everything positive; dividing by the sum along `dim` (keepdim=True) makes it sum to 1. "
        "Subtract the max along `dim` first so exp cannot overflow.",
        "e = (acts - acts.max(dim=dim, keepdim=True).values).exp(); return e / e.sum(dim=dim, keepdim=True)",
    ),
)

# ----------------------------------------------------------------------------- binary softmax

BINARY_SOFTMAX = Exercise(
    id="losses.binary_softmax",
    module="losses",
    func="binary_softmax",
    title="binary_softmax(acts)",
    points=1,
    reference=ref_binary_softmax,
    cases=(
        case(
            "one-row", "one row of two activations", lambda s: call(torch.tensor([[1.0, 2.0]])), random=False
        ),
        case(
            "lesson-6x2",
            "the lesson's 6×2 activations (printed values)",
            lambda s: call(literal(torch.tensor(LESSON_ACTS))),
            expected=fixed(LESSON_SIGMOID_DIFF),
            random=False,
        ),
        case(
            "book-seed-42",
            "the book's torch.manual_seed(42) activations",
            lambda s: call(expr(BOOK_ACTS)),
            expected=fixed(BOOK_SOFTMAX_COL0),
            random=False,
        ),
        case("random-8x2", "random 8×2 activations", lambda s: call(randn(s, 8, 2, scale=2.0))),
        case("float64", "float64 activations", lambda s: call(randn(s, 16, 2, dtype=torch.float64))),
        case("large-logits", "large activations ×100", lambda s: call(randn(s, 16, 2, scale=100.0))),
    ),
    checks=(check_tensor, check_unmutated),
    tolerance=prob_tol,
    diagnoses=(
        Diagnosis(
            Misconception(
                "binary-softmax-wrong-class",
                "probability of class 1 instead of class 0",
                "sigmoid(acts[:, 1] - acts[:, 0]) is the probability of the SECOND class.",
                "The first column minus the second: how much more the model believes in class 0.",
            ),
            variant=lambda x: torch.sigmoid(x[:, 1] - x[:, 0]),
        ),
        Diagnosis(
            Misconception(
                "binary-softmax-no-difference",
                "sigmoid of one column instead of the difference",
                "sigmoid(acts[:, 0]) ignores the other class's activation; softmax depends only on the difference.",
                "With two classes, softmax's first column equals sigmoid(a0 - a1).",
            ),
            variant=lambda x: torch.sigmoid(x[:, 0]),
        ),
        MUTATES_INPUT,
    ),
    forbidden={"_softmax": "torch.softmax / F.softmax (use the sigmoid of the difference)", **SOFTMAX_ROUTES},
    figures=rows_figure(
        "Your probabilities of class 0 vs PyTorch's, per item",
        "One bar pair per item: your probability of the first class beside the reference's.",
    ),
    hints=(
        "With two classes, softmax's first column is e^a0 / (e^a0 + e^a1). Divide top and bottom by e^a0.",
        "1 / (1 + e^(a1 - a0)) is the sigmoid of a0 - a1.",
        "return torch.sigmoid(acts[:, 0] - acts[:, 1])",
    ),
)

# ----------------------------------------------------------------------------- log-softmax

LOG_SOFTMAX = Exercise(
    id="losses.log_softmax",
    module="losses",
    func="log_softmax",
    title="log_softmax(acts, dim=-1)",
    points=2,
    reference=ref_log_softmax,
    cases=(
        case(
            "one-row", "one row of two activations", lambda s: call(torch.tensor([[1.0, 2.0]])), random=False
        ),
        case(
            "lesson-6x2",
            "the lesson's 6×2 activations",
            lambda s: call(literal(torch.tensor(LESSON_ACTS))),
            random=False,
        ),
        case("random-4x3", "random 4×3 activations", lambda s: call(randn(s, 4, 3))),
        case("dim-0", "along dim=0", lambda s: call(randn(s, 3, 5), dim=0)),
        case("3d-middle-dim", "3-D input, dim=1", lambda s: call(randn(s, 2, 3, 4), dim=1)),
        case(
            "float64", "float64 activations", lambda s: call(randn(s, 5, 7, scale=3.0, dtype=torch.float64))
        ),
        case(
            "large-logits",
            "large activations ×100 (overflow and underflow trap)",
            lambda s: call(randn(s, 4, 6, scale=100.0)),
        ),
        case("huge-logits", "huge activations ×1e4", lambda s: call(randn(s, 8, 10, scale=1e4))),
        case("big", "512 × 1000 activations", lambda s: call(randn(s, 512, 1000, scale=10.0))),
        case(
            "grad",
            "gradient check",
            lambda s: call(randn(s, 4, 5), grad_wrt=0, grad_output=grad_out(s + 1, 4, 5)),
        ),
        case(
            "grad-large",
            "gradient check at large activations",
            lambda s: call(randn(s, 3, 6, scale=100.0), grad_wrt=0, grad_output=grad_out(s + 1, 3, 6)),
        ),
    ),
    checks=(check_tensor, check_grad(prob_tol), check_unmutated),
    tolerance=log_tol,
    diagnoses=(
        Diagnosis(
            Misconception(
                "log-softmax-forgot-log",
                "forgot the log of the sum",
                "You subtracted sum(exp(x - m)) itself instead of log(sum(exp(x - m))).",
                "log(e^a / S) = a - log(S): the log applies to the sum too.",
            ),
            variant=lambda x, dim=-1: (
                x
                - x.max(dim=dim, keepdim=True).values
                - (x - x.max(dim=dim, keepdim=True).values).exp().sum(dim=dim, keepdim=True)
            ),
        ),
        Diagnosis(
            Misconception(
                "log-softmax-no-max",
                "logsumexp without the max: exp overflows",
                "log(sum(exp(x))) overflows to inf when an activation is large, so the whole row becomes -inf.",
                "The logsumexp trick: log Σ e^x = m + log Σ e^(x - m), with m the max along `dim`.",
            ),
            variant=lambda x, dim=-1: x - torch.log(torch.exp(x).sum(dim=dim, keepdim=True)),
            applies=_large_inputs,
        ),
        Diagnosis(
            Misconception(
                "log-softmax-wrong-dim",
                "computed along the wrong dimension",
                "Your result is log_softmax along another dimension than `dim`.",
                "Use `dim` in the max and in the sum, with keepdim=True.",
            ),
            detect=other_dim(F.log_softmax),
        ),
        Diagnosis(
            Misconception(
                "log-softmax-naive",
                "log(softmax(x)): small probabilities underflow to log(0)",
                "Probabilities below ~1e-38 (float32) round to 0, and log(0) = -inf; the log-space formula never "
                "forms them.",
                "Compute in log space: x - m - log(sum(exp(x - m))) (the logsumexp trick, book chapter 19).",
            ),
            detect=overflow,
        ),
        GRAD_DETACHED,
        MUTATES_INPUT,
    ),
    forbidden={
        "_log_softmax": "torch.log_softmax / F.log_softmax / Tensor.log_softmax",
        "logsumexp": "torch.logsumexp (the trick is the exercise)",
        "_softmax": "torch.softmax / F.softmax",
        **SOFTMAX_ROUTES,
        **LOG_SOFTMAX_ROUTES,
    },
    hints=(
        "log(softmax(x)) = x - log(sum(exp(x))). Computing it in that form avoids taking the log of tiny numbers.",
        "The logsumexp trick: log(sum(exp(x))) = m + log(sum(exp(x - m))) with m = max along dim (keepdim=True).",
        "m = acts.max(dim=dim, keepdim=True).values; return acts - m - (acts - m).exp().sum(dim=dim, keepdim=True).log()",
    ),
)

# ----------------------------------------------------------------------------- nll_loss


def _with_reduction(fn: Any) -> Any:
    """A loss variant called like the student's function: (x, targets, reduction='mean')."""

    def variant(x: torch.Tensor, t: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return fn(x, t, reduction)

    return variant


NLL_LOSS = Exercise(
    id="losses.nll_loss",
    module="losses",
    func="nll_loss",
    title="nll_loss(log_probs, targets, reduction='mean')",
    points=2,
    reference=ref_nll_loss,
    cases=(
        case(
            "tiny",
            "one item, two classes",
            lambda s: call(torch.tensor([[-0.3133, -1.3133]]), torch.tensor([1])),
            random=False,
        ),
        case(
            "lesson-probs",
            "the lesson's call on probabilities: nll_loss(sm_acts, targ, reduction='none')",
            lambda s: call(torch.tensor(LESSON_SOFTMAX), torch.tensor(LESSON_TARG), reduction="none"),
            expected=fixed(LESSON_NLL_OF_PROBS),
            random=False,
        ),
        case(
            "lesson-none",
            "the lesson's log-probabilities, reduction='none'",
            lambda s: call(
                expr(f"torch.tensor({LESSON_ACTS}).log_softmax(dim=1)"),
                torch.tensor(LESSON_TARG),
                reduction="none",
            ),
            random=False,
        ),
        case(
            "mean", "random 6×5, reduction='mean'", lambda s: call(log_probs(s, 6, 5), targets(s + 1, 6, 5))
        ),
        case(
            "sum",
            "random 6×5, reduction='sum'",
            lambda s: call(log_probs(s, 6, 5), targets(s + 1, 6, 5), reduction="sum"),
        ),
        case(
            "one-class",
            "every target the same class",
            lambda s: call(log_probs(s, 8, 4), expr("torch.full((8,), 2)"), reduction="none"),
        ),
        case(
            "every-class",
            "every class once",
            lambda s: call(
                log_probs(s, 10, 10), expr(f"torch.randperm(10, generator={gen(s + 1)})"), reduction="none"
            ),
        ),
        case(
            "pets-batch",
            "64 pets × 37 breeds, mean",
            lambda s: call(log_probs(s, 64, 37), targets(s + 1, 64, 37)),
        ),
        case(
            "float64",
            "float64, reduction='none'",
            lambda s: call(log_probs(s, 7, 3, dtype=torch.float64), targets(s + 1, 7, 3), reduction="none"),
        ),
        case(
            "big",
            "512 × 1000, reduction='sum'",
            lambda s: call(log_probs(s, 512, 1000), targets(s + 1, 512, 1000), reduction="sum"),
        ),
        case(
            "grad-mean",
            "gradient check, mean",
            lambda s: call(log_probs(s, 5, 4), targets(s + 1, 5, 4), grad_wrt=0),
        ),
        case(
            "grad-none",
            "gradient check, reduction='none'",
            lambda s: call(
                log_probs(s, 5, 4),
                targets(s + 1, 5, 4),
                reduction="none",
                grad_wrt=0,
                grad_output=grad_out(s + 2, 5),
            ),
        ),
    ),
    checks=(check_tensor, check_grad(prob_tol), check_unmutated),
    tolerance=log_tol,
    diagnoses=(
        Diagnosis(
            Misconception(
                "nll-missing-minus",
                "missing minus sign",
                "You returned the log-probability of the right class itself; the loss is its negative, so that "
                "a confident right answer gives a loss near 0, not a large negative number.",
                "loss = -log_probs[range(n), targets]",
            ),
            variant=_with_reduction(lambda x, t, r: -F.nll_loss(x, t, reduction=r)),
        ),
        Diagnosis(
            Misconception(
                "nll-takes-log",
                "took the log again",
                "nll_loss receives log-probabilities already: the log belongs in log_softmax, not here "
                "(log of a negative number is nan).",
                "nll_loss only picks -log_probs[i, targets[i]] and reduces.",
            ),
            variant=_with_reduction(lambda x, t, r: F.nll_loss(torch.log(x), t, reduction=r)),
        ),
        Diagnosis(
            Misconception(
                "nll-sum-not-mean",
                "sum instead of mean",
                "reduction='mean' averages over the batch; you summed, so the loss grows with the batch size.",
                "mean = sum / number of items.",
            ),
            variant=_with_reduction(lambda x, t, r: F.nll_loss(x, t, reduction="sum" if r == "mean" else r)),
        ),
        Diagnosis(
            Misconception(
                "nll-mean-over-classes",
                "mean over the wrong axis",
                "Averaging the one-hot-masked log-probabilities over the class axis divides every loss by "
                "the number of classes.",
                "Pick one entry per row (log_probs[range(n), targets]); average over the batch only.",
            ),
            variant=_with_reduction(lambda x, t, r: F.nll_loss(x, t, reduction=r) / x.shape[1]),
        ),
        Diagnosis(
            Misconception(
                "nll-ignores-reduction",
                "ignores the reduction argument",
                "Your result is the mean whatever `reduction` says.",
                "'none' returns one loss per item, 'sum' adds them, 'mean' averages them.",
            ),
            variant=_with_reduction(lambda x, t, r: F.nll_loss(x, t, reduction="mean")),
        ),
        Diagnosis(
            Misconception(
                "nll-wrong-indexing",
                "log_probs[:, targets] picks a whole N×N block",
                "Indexing with a slice and a tensor takes every row for every target: an N×N matrix, "
                "not one entry per row.",
                "Pair each row with its own target: log_probs[torch.arange(n), targets].",
            ),
            variant=_with_reduction(lambda x, t, r: _reduce(-x[:, t], r)),
        ),
        GRAD_DETACHED,
        MUTATES_INPUT,
    ),
    forbidden={"nll_loss_forward": "F.nll_loss / nn.NLLLoss", "nll_loss2d_forward": "F.nll_loss"},
    hints=(
        "For each item, the loss is minus the log-probability the model gave to the right class.",
        "log_probs[torch.arange(n), targets] picks one entry per row; then negate and reduce.",
        "losses = -log_probs[torch.arange(len(targets)), targets]; then losses.mean() / .sum() / losses",
    ),
)

# ----------------------------------------------------------------------------- cross-entropy


CROSS_ENTROPY = Exercise(
    id="losses.cross_entropy",
    module="losses",
    func="cross_entropy",
    title="cross_entropy(acts, targets, reduction='mean')",
    points=3,
    reference=ref_cross_entropy,
    cases=(
        case(
            "tiny",
            "one item, two classes",
            lambda s: call(torch.tensor([[1.0, 2.0]]), torch.tensor([0])),
            random=False,
        ),
        case(
            "lesson-6x2-none",
            "the lesson's 6×2 example, reduction='none' (printed values)",
            lambda s: call(literal(torch.tensor(LESSON_ACTS)), torch.tensor(LESSON_TARG), reduction="none"),
            expected=fixed(LESSON_CE_NONE),
            random=False,
        ),
        case(
            "lesson-6x2-mean",
            "the lesson's 6×2 example, mean (printed 1.7790)",
            lambda s: call(literal(torch.tensor(LESSON_ACTS)), torch.tensor(LESSON_TARG)),
            expected=fixed(LESSON_CE_MEAN),
            random=False,
        ),
        case(
            "book-seed-42",
            "the book's example (mean cross-entropy 1.8045)",
            lambda s: call(expr(BOOK_ACTS), torch.tensor(LESSON_TARG)),
            expected=fixed(BOOK_CE_MEAN),
            random=False,
        ),
        case(
            "sum",
            "random 5×4, reduction='sum'",
            lambda s: call(randn(s, 5, 4), targets(s + 1, 5, 4), reduction="sum"),
        ),
        case(
            "one-class",
            "every target the same class",
            lambda s: call(randn(s, 8, 4, scale=2.0), expr("torch.full((8,), 3)"), reduction="none"),
        ),
        case(
            "every-class",
            "every class once",
            lambda s: call(
                randn(s, 10, 10), expr(f"torch.randperm(10, generator={gen(s + 1)})"), reduction="none"
            ),
        ),
        case(
            "pets-batch",
            "64 pets × 37 breeds, mean",
            lambda s: call(randn(s, 64, 37, scale=3.0), targets(s + 1, 64, 37)),
        ),
        case(
            "float64",
            "float64, reduction='none'",
            lambda s: call(randn(s, 7, 3, dtype=torch.float64), targets(s + 1, 7, 3), reduction="none"),
        ),
        case(
            "large-logits",
            "large activations ×100 (overflow trap)",
            lambda s: call(randn(s, 6, 5, scale=100.0), targets(s + 1, 6, 5)),
        ),
        case(
            "huge-logits",
            "huge activations ×1e4, reduction='none'",
            lambda s: call(randn(s, 8, 10, scale=1e4), targets(s + 1, 8, 10), reduction="none"),
        ),
        case(
            "big",
            "512 × 1000, mean",
            lambda s: call(randn(s, 512, 1000, scale=5.0), targets(s + 1, 512, 1000)),
        ),
        case(
            "grad-mean",
            "gradient check, mean (softmax - one-hot, / n)",
            lambda s: call(randn(s, 5, 4), targets(s + 1, 5, 4), grad_wrt=0),
        ),
        case(
            "grad-none",
            "gradient check, reduction='none'",
            lambda s: call(
                randn(s, 5, 4),
                targets(s + 1, 5, 4),
                reduction="none",
                grad_wrt=0,
                grad_output=grad_out(s + 2, 5),
            ),
        ),
        case(
            "grad-large",
            "gradient check at large activations",
            lambda s: call(randn(s, 4, 6, scale=100.0), targets(s + 1, 4, 6), grad_wrt=0),
        ),
    ),
    checks=(check_tensor, check_grad(prob_tol), check_unmutated),
    tolerance=log_tol,
    diagnoses=(
        Diagnosis(
            Misconception(
                "ce-probs-not-log-probs",
                "probabilities fed to nll_loss (the slip in the lesson notes)",
                "nll_loss does not take the log: given softmax probabilities it returns -p, "
                "so every loss is negative and between -1 and 0.",
                "Cross-entropy = nll_loss(log_softmax(acts)): take the log (in log space) before nll_loss.",
            ),
            variant=_with_reduction(lambda x, t, r: F.nll_loss(F.softmax(x, dim=1), t, reduction=r)),
        ),
        Diagnosis(
            Misconception(
                "ce-missing-minus",
                "missing minus sign",
                "You returned the log-probability of the right class; cross-entropy is its negative.",
                "loss = -log_softmax(acts)[range(n), targets]",
            ),
            variant=_with_reduction(lambda x, t, r: -F.cross_entropy(x, t, reduction=r)),
        ),
        Diagnosis(
            Misconception(
                "ce-sum-not-mean",
                "sum instead of mean",
                "reduction='mean' averages over the batch; you summed.",
                "mean = sum / number of items.",
            ),
            variant=_with_reduction(
                lambda x, t, r: F.cross_entropy(x, t, reduction="sum" if r == "mean" else r)
            ),
        ),
        Diagnosis(
            Misconception(
                "ce-wrong-dim",
                "log_softmax along the batch dimension",
                "The probabilities were normalised over dim 0 (the items) instead of dim 1 (the classes).",
                "acts is [batch, classes]: normalise along dim=1.",
            ),
            variant=_with_reduction(lambda x, t, r: F.nll_loss(F.log_softmax(x, dim=0), t, reduction=r)),
        ),
        Diagnosis(
            Misconception(
                "ce-no-max-subtraction",
                "no max-subtraction: exp overflows",
                "exp of a large activation is inf, and the loss becomes nan or inf.",
                "Use a log_softmax with the logsumexp trick (subtract the max first).",
            ),
            detect=overflow,
        ),
        GRAD_DETACHED,
        MUTATES_INPUT,
    ),
    forbidden={
        "nll_loss_forward": "F.nll_loss (write your own nll_loss)",
        "nll_loss2d_forward": "F.nll_loss (write your own nll_loss)",
        "_log_softmax": "F.log_softmax (write your own log_softmax)",
        "cross_entropy_loss": "F.cross_entropy / nn.CrossEntropyLoss",
        **LOG_SOFTMAX_ROUTES,
    },
    hints=(
        "Cross-entropy is two steps you have already written: log_softmax, then nll_loss.",
        "Normalise over the classes (dim=1) in log space, then pick minus the log-probability of each target.",
        "return nll_loss(log_softmax(acts, dim=1), targets, reduction)",
    ),
    figures=rows_figure(
        "Your losses vs PyTorch's, per item",
        "One bar pair per item (reduction='none'): your loss beside the reference's; "
        "cross-entropy is never negative.",
    ),
)

EXERCISES = (SOFTMAX, BINARY_SOFTMAX, LOG_SOFTMAX, NLL_LOSS, CROSS_ENTROPY)
