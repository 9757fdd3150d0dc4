"""Spec of ``exercises/interpretation.py``: the confusion matrix and ``most_confused``.

The references re-implement fastai's documented behaviour (``ClassificationInterpretation``):
``cm[i, j]`` counts items of actual class ``i`` predicted as ``j``; ``most_confused`` zeroes the
diagonal, collects ``(vocab[i], vocab[j], cm[i, j])`` for ``cm >= min_val`` row by row and sorts them
by count, largest first, with a stable sort (ties stay in row-major order).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch

import grader.simulate  # noqa: F401  (recipes call grader.simulate.*)
from grader.explain import check_exact_tensor, check_items, check_unmutated
from grader.model import Misconception
from grader.outcome import Outcome, Returned
from grader.spec import Arg, Call, CaseSpec, Diagnosis, Exercise, Tolerance, call, expr

EXACT = Tolerance(rtol=0.0, atol=0.0)

# ----------------------------------------------------------------------------- references


def ref_confusion_matrix(preds: torch.Tensor, targets: torch.Tensor, n_classes: int) -> torch.Tensor:
    """One-hot rows for the actual class times one-hot columns for the predicted class, summed."""
    classes = torch.arange(n_classes)
    actual = (targets[:, None] == classes).long()  # (N, C)
    predicted = (preds[:, None] == classes).long()  # (N, C)
    return actual.T @ predicted


def _pairs(
    cm: torch.Tensor, vocab: list[str], keep: Any, diagonal: bool = False
) -> list[tuple[str, str, int]]:
    rows = cm.tolist()
    return [
        (vocab[i], vocab[j], int(v))
        for i, row in enumerate(rows)
        for j, v in enumerate(row)
        if (diagonal or i != j) and keep(v)
    ]


def ref_most_confused(cm: torch.Tensor, vocab: list[str], min_val: int = 1) -> list[tuple[str, str, int]]:
    found = _pairs(cm, vocab, lambda v: v >= min_val)
    return sorted(found, key=lambda p: -p[2])  # stable: ties keep row-major order


# ----------------------------------------------------------------------------- variants and detectors


def _cm_transposed(preds: torch.Tensor, targets: torch.Tensor, n_classes: int) -> torch.Tensor:
    return ref_confusion_matrix(preds, targets, n_classes).T


def _with_diagonal(cm: torch.Tensor, vocab: list[str], min_val: int = 1) -> list[tuple[str, str, int]]:
    return sorted(_pairs(cm, vocab, lambda v: v >= min_val, diagonal=True), key=lambda p: -p[2])


def _strictly_greater(cm: torch.Tensor, vocab: list[str], min_val: int = 1) -> list[tuple[str, str, int]]:
    return sorted(_pairs(cm, vocab, lambda v: v > min_val), key=lambda p: -p[2])


def _same_items(got: Outcome, exp: Outcome) -> list[Any] | None:
    """The student's list when it holds exactly the expected items (in any order), else None."""
    if not (isinstance(got, Returned) and isinstance(exp, Returned)):
        return None
    g, e = got.value, exp.value
    if type(g) is not list or type(e) is not list or g == e:
        return None
    try:
        if Counter(map(repr, g)) != Counter(map(repr, e)):
            return None
    except Exception:
        return None
    if not all(type(x) is tuple and len(x) == 3 and type(x[2]) is int for x in g):
        return None
    return g


def ascending(got: Outcome, exp: Outcome, c: Call) -> bool:
    """The right items, smallest count first."""
    g = _same_items(got, exp)
    if g is None:
        return False
    counts = [x[2] for x in g]
    return counts == sorted(counts) and counts != sorted(counts, reverse=True)


def ties_reordered(got: Outcome, exp: Outcome, c: Call) -> bool:
    """The right items, largest count first, but equal counts not in row-major order."""
    g = _same_items(got, exp)
    if g is None:
        return False
    counts = [x[2] for x in g]
    return counts == sorted(counts, reverse=True)


# ----------------------------------------------------------------------------- cases


def fixed(id: str, label: str, *args: Any, **kwargs: Any) -> CaseSpec:
    """A hand-written case (the same under every seed)."""
    return CaseSpec(id, label, lambda s: call(*args, **kwargs), random=False)


def lit(values: list[Any]) -> Arg:
    return expr(f"torch.tensor({values!r})")


def sim(code: str) -> Arg:
    return expr(f"grader.simulate.{code}")


def _random_predictions(n: int, c: int, accuracy: float) -> Any:
    def build(s: int) -> Call:
        seed = s % 100_000
        return call(
            sim(f"predictions({seed}, {n}, {c}, accuracy={accuracy})"), sim(f"targets({seed}, {n}, {c})"), c
        )

    return build


CM_CASES = (
    fixed("tiny", "5 items, 3 classes", lit([0, 2, 1, 1, 2]), lit([0, 1, 1, 1, 2]), 3),
    fixed(
        "rows-are-actual",
        "rows are the actual class: every class-0 item predicted as 1",
        lit([1, 1, 1, 1]),
        lit([0, 0, 0, 1]),
        2,
    ),
    fixed("all-right", "every prediction right: only the diagonal", lit([2, 0, 1, 2]), lit([2, 0, 1, 2]), 3),
    fixed(
        "unseen-classes",
        "classes that never occur (5 classes, labels only 0..2)",
        lit([0, 1, 2, 2, 1, 0]),
        lit([0, 1, 2, 1, 1, 2]),
        5,
    ),
    fixed(
        "unseen-last-class",
        "the last class never occurs in preds or targets",
        lit([0, 1, 1, 0]),
        lit([1, 1, 0, 0]),
        3,
    ),
    fixed(
        "empty",
        "an empty validation set",
        expr("torch.zeros(0, dtype=torch.int64)"),
        expr("torch.zeros(0, dtype=torch.int64)"),
        4,
    ),
    CaseSpec("random-10", "200 items, 10 classes", _random_predictions(200, 10, 0.7)),
    CaseSpec("random-37", "a 37-breed validation set (1,000 items)", _random_predictions(1000, 37, 0.9)),
    fixed(
        "book",
        "the book's validation set: 1,478 pets, 37 breeds",
        sim("book_preds()"),
        sim("book_targets()"),
        37,
    ),
)

CONFUSION_MATRIX = Exercise(
    id="interpretation.confusion_matrix",
    module="interpretation",
    func="confusion_matrix",
    title="confusion_matrix(preds, targets, n_classes)",
    points=2,
    reference=ref_confusion_matrix,
    cases=CM_CASES,
    checks=(check_exact_tensor, check_unmutated),
    tolerance=lambda c, e: EXACT,
    diagnoses=(
        Diagnosis(
            Misconception(
                "cm-transposed",
                "rows and columns swapped",
                "Your rows are the predicted class and your columns the actual class: fastai (and this kit) "
                "put the ACTUAL class on the rows.",
                "cm[actual, predicted] += 1: index the row with the target, the column with the prediction.",
            ),
            variant=_cm_transposed,
        ),
    ),
    hints=(
        "Every item adds 1 to exactly one cell: the row of its actual class, the column of its predicted class.",
        "Start from torch.zeros(n_classes, n_classes, dtype=torch.int64), so classes that never occur still "
        "get their (empty) row and column; then count.",
        "A vectorised way: torch.bincount(targets * n_classes + preds, minlength=n_classes**2)"
        ".reshape(n_classes, n_classes)",
    ),
)


def _confused_case(id: str, label: str, cm: list[list[int]], vocab: list[str], **kw: Any) -> CaseSpec:
    return fixed(id, label, lit(cm), vocab, **kw)


def _random_cm(s: int) -> Call:
    seed = s % 100_000
    g = torch.Generator().manual_seed(s)
    min_val = int(torch.randint(1, 4, (1,), generator=g))
    return call(sim(f"confusion({seed}, 600, 37, accuracy=0.8)"), sim("pet_vocab()"), min_val=min_val)


PETS3 = ["Birman", "Ragdoll", "Siamese"]

MC_CASES = (
    _confused_case("tiny", "3 breeds, three mistakes", [[5, 0, 1], [3, 4, 0], [0, 2, 6]], PETS3),
    _confused_case(
        "actual-then-predicted",
        "(actual, predicted): 4 Ragdolls called Birman, 1 Birman called Ragdoll",
        [[9, 1], [4, 7]],
        ["Birman", "Ragdoll"],
    ),
    _confused_case(
        "no-mistakes", "no mistakes at all: an empty list", [[3, 0, 0], [0, 5, 0], [0, 0, 2]], PETS3
    ),
    _confused_case(
        "min-val-boundary",
        "min_val=2 keeps a count of exactly 2",
        [[5, 2, 1], [3, 4, 0], [2, 1, 6]],
        PETS3,
        min_val=2,
    ),
    _confused_case(
        "ties",
        "equal counts stay in row-major order",
        [[0, 2, 2, 1], [2, 0, 3, 2], [0, 2, 0, 0], [3, 2, 0, 0]],
        ["Bengal", "Egyptian_Mau", "Persian", "Maine_Coon"],
    ),
    _confused_case(
        "unsorted-vocab",
        "a vocab that is not alphabetical (ties follow the class index, not the name)",
        [[4, 1, 2], [2, 6, 0], [1, 2, 3]],
        ["pug", "boxer", "beagle"],
    ),
    _confused_case(
        "unseen-class",
        "a class that never occurs (a row and a column of zeros)",
        [[6, 0, 2, 0], [0, 0, 0, 0], [3, 0, 5, 0], [1, 0, 0, 4]],
        ["american_bulldog", "boxer", "american_pit_bull_terrier", "staffordshire_bull_terrier"],
    ),
    fixed(
        "book-min-val-5",
        "the book's 37×37 matrix, min_val=5 (the book's printed list)",
        sim("book_confusion()"),
        sim("pet_vocab()"),
        min_val=5,
    ),
    fixed("book-all", "the book's 37×37 matrix, every mistake", sim("book_confusion()"), sim("pet_vocab()")),
    CaseSpec("random-37", "a 37-breed model's matrix, min_val 1..3", _random_cm),
)

MOST_CONFUSED = Exercise(
    id="interpretation.most_confused",
    module="interpretation",
    func="most_confused",
    title="most_confused(cm, vocab, min_val=1)",
    points=2,
    reference=ref_most_confused,
    cases=MC_CASES,
    checks=(check_items, check_unmutated),
    tolerance=lambda c, e: EXACT,
    diagnoses=(
        Diagnosis(
            Misconception(
                "most-confused-diagonal",
                "correct predictions listed as confusions",
                "The diagonal cm[i, i] counts CORRECT predictions; your list includes pairs like "
                "('Birman', 'Birman', 5).",
                "Skip the cells with i == j (fastai fills the diagonal with zeros first).",
            ),
            variant=_with_diagonal,
        ),
        Diagnosis(
            Misconception(
                "most-confused-ascending",
                "sorted smallest first",
                "The list holds the right pairs, but the smallest counts come first; the point is to see the "
                "WORST confusions first.",
                "Sort by the count in descending order: sorted(..., key=..., reverse=True).",
            ),
            detect=ascending,
        ),
        Diagnosis(
            Misconception(
                "most-confused-tie-order",
                "equal counts in the wrong order",
                "Pairs with the same count must stay in row-major order (actual index, then predicted index); "
                "yours are reordered, e.g. by reversing an ascending sort.",
                "Collect row by row and sort once with reverse=True: Python's sort is stable.",
            ),
            detect=ties_reordered,
        ),
        Diagnosis(
            Misconception(
                "most-confused-min-val-off-by-one",
                "min_val excluded",
                "A cell whose count EQUALS min_val is missing: keep counts >= min_val, not > min_val.",
                "most_confused(min_val=5) lists every cell with 5 or more mistakes.",
            ),
            variant=_strictly_greater,
        ),
    ),
    hints=(
        "Walk over every cell (i, j) of the matrix, skip the diagonal, and keep (vocab[i], vocab[j], count) "
        "when count >= min_val.",
        "Make count a Python int (int(cm[i, j]) or cm.tolist()), then sort the list by the count, largest "
        "first, with one stable sort.",
        "pairs = [(vocab[i], vocab[j], v) for i, row in enumerate(cm.tolist()) for j, v in enumerate(row) "
        "if i != j and v >= min_val]; return sorted(pairs, key=lambda p: p[2], reverse=True)",
    ),
)

EXERCISES = (CONFUSION_MATRIX, MOST_CONFUSED)
