"""The interpretation and learning-rate exercises: references against fastai's documented behaviour,
the simulated data behind their cases, the worked examples in the stubs, and the generic checks
and codec support (slices) they added."""

from __future__ import annotations

import importlib.util
import itertools
import math
import pathlib

import pytest
import torch
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from grader import simulate, wire
from grader.engine import build_plan
from grader.explain import check_exact_tensor, check_floats, check_items
from grader.outcome import Returned
from grader.settings import Settings
from grader.spec import Tolerance, call, show_literal
from grader.specs import interpretation, learning_rates
from grader.specs import select as select_exercises

# The book's printed interp.most_confused(min_val=5) (fastbook 05_pet_breeds).
BOOK_LIST = [
    ("american_pit_bull_terrier", "staffordshire_bull_terrier", 10),
    ("Ragdoll", "Birman", 8),
    ("Siamese", "Birman", 6),
    ("Bengal", "Egyptian_Mau", 5),
    ("american_pit_bull_terrier", "american_bulldog", 5),
]


def load(path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(f"_t_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SOLUTIONS_I = load(ROOT / "solutions" / "interpretation.py")
SOLUTIONS_L = load(ROOT / "solutions" / "learning_rates.py")


# ----------------------------------------------------------------------------- interpretation


def test_book_matrix_reproduces_the_books_most_confused():
    cm = simulate.book_confusion()
    assert cm.shape == (37, 37) and cm.dtype == torch.int64
    assert int(cm.sum()) == simulate.BOOK_VALID_SIZE == 1478
    assert interpretation.ref_most_confused(cm, simulate.pet_vocab(), min_val=5) == BOOK_LIST
    preds, targets = simulate.book_preds(), simulate.book_targets()
    assert torch.equal(interpretation.ref_confusion_matrix(preds, targets, 37), cm)


def test_vocab_is_fastais_sorted_order():
    vocab = simulate.pet_vocab()
    assert len(vocab) == 37 and vocab == sorted(vocab)
    assert vocab[:2] == ["Abyssinian", "Bengal"]  # capitalised cat breeds sort first


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 60), c=st.integers(1, 9), seed=st.integers(0, 2**31))
def test_confusion_matrix_counts_every_item_once(n, c, seed):
    g = torch.Generator().manual_seed(seed)
    preds, targets = torch.randint(0, c, (n,), generator=g), torch.randint(0, c, (n,), generator=g)
    cm = interpretation.ref_confusion_matrix(preds, targets, c)
    expected = torch.zeros(c, c, dtype=torch.int64)
    for p, t in zip(preds.tolist(), targets.tolist()):
        expected[t, p] += 1  # row: actual, column: predicted
    assert torch.equal(cm, expected)
    assert torch.equal(SOLUTIONS_I.confusion_matrix(preds, targets, c), expected)


@settings(max_examples=60, deadline=None)
@given(c=st.integers(1, 7), seed=st.integers(0, 2**31), min_val=st.integers(1, 4))
def test_most_confused_is_stable_descending_off_diagonal(c, seed, min_val):
    cm = torch.randint(0, 6, (c, c), generator=torch.Generator().manual_seed(seed))
    vocab = [f"class{k}" for k in range(c)][::-1]  # not alphabetical: ties follow the index
    got = interpretation.ref_most_confused(cm, vocab, min_val)
    assert got == SOLUTIONS_I.most_confused(cm, vocab, min_val)
    index = {v: k for k, v in enumerate(vocab)}
    keys = [(-n, index[a], index[p]) for a, p, n in got]
    assert keys == sorted(keys)  # count descending, then row-major
    assert all(a != p and n >= min_val and type(n) is int for a, p, n in got)
    assert len(got) == int(((cm >= min_val) & ~torch.eye(c, dtype=torch.bool)).sum())


def test_stub_examples_interpretation():
    cm = SOLUTIONS_I.confusion_matrix(torch.tensor([0, 2, 1, 1, 2]), torch.tensor([0, 1, 1, 1, 2]), 3)
    assert cm.tolist() == [[1, 0, 0], [0, 2, 1], [0, 0, 1]]
    cm = torch.tensor([[5, 0, 1], [3, 4, 0], [0, 2, 6]])
    vocab = ["Birman", "Ragdoll", "Siamese"]
    assert interpretation.ref_most_confused(cm, vocab) == [
        ("Ragdoll", "Birman", 3),
        ("Siamese", "Ragdoll", 2),
        ("Birman", "Siamese", 1),
    ]
    assert interpretation.ref_most_confused(cm, vocab, min_val=2) == [
        ("Ragdoll", "Birman", 3),
        ("Siamese", "Ragdoll", 2),
    ]
    assert simulate.pet_vocab().index("Bengal") == 1
    assert simulate.pet_vocab().index("american_pit_bull_terrier") == 13


# ----------------------------------------------------------------------------- learning rates


def f64(values):
    return torch.tensor(values, dtype=torch.float64)


def test_stub_examples_learning_rates():
    lrs, losses = f64([1e-4, 1e-3, 1e-2, 1e-1, 1.0]), f64([2.0, 1.5, 0.8, 0.6, 3.0])
    assert learning_rates.ref_lr_suggestions(lrs, losses) == pytest.approx((0.01, 0.001), rel=1e-12)
    assert learning_rates._steep_linear_lr(lrs, losses)[1] == pytest.approx(1e-4)
    groups = learning_rates.ref_lrs_for_groups
    assert groups(1e-3, 3) == [0.001] * 3
    assert groups(slice(1e-3), 3) == pytest.approx([1e-4, 1e-4, 1e-3], rel=1e-12)
    assert groups(slice(1e-5, 1e-3), 3) == pytest.approx([1e-5, 1e-4, 1e-3], rel=1e-12)
    assert groups(slice(1e-6, 1e-4), 4) == pytest.approx([1e-6, 4.6416e-6, 2.1544e-5, 1e-4], rel=1e-4)
    assert groups(slice(1e-5, 1e-3), 1) == [1e-3]
    assert groups(slice(None, 1e-2), 1) == [1e-2]
    assert learning_rates._linear_spacing(slice(1e-5, 1e-3), 3)[1] == pytest.approx(5.05e-4)


def test_minimum_takes_the_first_of_tied_losses():
    lrs, losses = f64([1e-4, 1e-3, 1e-2, 1e-1, 1.0]), f64([2.0, 1.2, 0.5, 0.5, 4.0])
    assert learning_rates.ref_lr_suggestions(lrs, losses)[0] == pytest.approx(1e-3)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), noise=st.sampled_from([0.02, 0.05, 0.1]), diverge=st.booleans())
def test_suggestions_on_simulated_runs(seed, noise, diverge):
    lrs, losses = simulate.finder_lrs(seed, noise, diverge), simulate.finder_losses(seed, noise, diverge)
    assert lrs.dtype == losses.dtype == torch.float64 and lrs.shape == losses.shape
    assert 6 <= len(lrs) <= 85
    ratios = lrs[1:] / lrs[:-1]
    assert torch.allclose(ratios, torch.full_like(ratios, 10 ** (8 / 100)))  # 1e-7 -> 10 in 100 steps
    assert float(lrs[0]) == pytest.approx(1e-7 * 10 ** (8 * 10 / 100))  # the first 10% dropped
    lr_min, lr_steep = learning_rates.ref_lr_suggestions(lrs, losses)
    assert lr_min * 10 == pytest.approx(float(lrs[int(losses.argmin())]), rel=1e-12)
    assert lr_steep in lrs[:-1].tolist()
    # Independent spellings agree: log10 instead of ln, and the solution file.
    slopes10 = (losses[1:] - losses[:-1]) / (lrs[1:].log10() - lrs[:-1].log10())
    assert lr_steep == float(lrs[int(slopes10.argmin())])
    assert SOLUTIONS_L.lr_suggestions(lrs, losses) == pytest.approx((lr_min, lr_steep), rel=1e-12)
    # The steepest fall comes before the lowest loss; the loss is going up again at the end of a
    # diverging run.
    assert lr_steep <= lr_min * 10
    if diverge and len(lrs) < 85:
        assert float(losses[-1]) > float(losses.min())


@settings(max_examples=80, deadline=None)
@given(
    lo=st.floats(1e-8, 1e-2),
    span=st.floats(0.1, 5),
    n=st.integers(1, 12),
)
def test_discriminative_rates_are_geometric(lo, span, n):
    hi = lo * 10**span
    rates = learning_rates.ref_lrs_for_groups(slice(lo, hi), n)
    assert len(rates) == n and all(type(r) is float for r in rates)
    assert rates[-1] == pytest.approx(hi, rel=1e-12)
    if n > 1:
        assert rates[0] == pytest.approx(lo, rel=1e-12)
        ratios = [b / a for a, b in itertools.pairwise(rates)]
        assert ratios == pytest.approx([ratios[0]] * (n - 1), rel=1e-9)
    assert SOLUTIONS_L.lrs_for_groups(slice(lo, hi), n) == pytest.approx(rates, rel=1e-9)
    stop_only = learning_rates.ref_lrs_for_groups(slice(None, hi), n)
    assert stop_only == pytest.approx([hi / 10] * (n - 1) + [hi], rel=1e-12)


def test_cases_are_simplest_first_with_pasteable_recipes():
    import grader.simulate  # noqa: F401  (what a student pastes after `import grader.simulate`)

    plan = build_plan(select_exercises(["interpretation", "learning_rates"]), Settings())
    for pe in plan.exercises:
        assert pe.cases[0].id in ("tiny", "float")
        func = pe.exercise.func
        for pc in pe.cases:
            namespace = {"torch": torch, "grader": __import__("grader"), func: lambda *a, **k: (a, k)}
            args, kwargs = eval(pc.recipe, namespace)
            assert len(args) == len(pc.call.args) and kwargs.keys() == pc.call.kwvalues.keys(), pc.id
            for rebuilt, original in zip(
                [*args, *kwargs.values()], [*pc.call.values, *pc.call.kwvalues.values()]
            ):
                if isinstance(original, torch.Tensor):
                    assert torch.equal(rebuilt, original) and rebuilt.dtype == original.dtype, pc.id
                else:
                    assert rebuilt == original, pc.id


def test_hidden_seed_makes_new_runs():
    public = build_plan(select_exercises(["learning_rates.lr_suggestions"]), Settings())
    hidden = build_plan(select_exercises(["learning_rates.lr_suggestions"]), Settings(hidden_seed=4242))
    pub = {pc.id: pc for pc in public.exercises[0].cases}
    hid = [pc for pc in hidden.exercises[0].cases if pc.hidden]
    assert {pc.id for pc in hid} == {
        "hidden-run",
        "hidden-noisy-run",
        "hidden-no-divergence",
        "hidden-another-run",
    }
    run = next(pc for pc in hid if pc.id == "hidden-run")
    assert not torch.equal(run.call.args[1].value, pub["run"].call.args[1].value)


# ----------------------------------------------------------------------------- checks and codec


def returned(v):
    return Returned(v)


TOL = Tolerance(rtol=1e-6, atol=0.0)
NOCALL = call()


def test_check_items_explains_order_types_and_missing_items():
    exp = returned([("a", "b", 3), ("b", "a", 2), ("a", "c", 2)])
    assert check_items(returned([("a", "b", 3), ("b", "a", 2), ("a", "c", 2)]), exp, NOCALL, TOL) is None
    f = check_items(returned([("a", "c", 2), ("b", "a", 2), ("a", "b", 3)]), exp, NOCALL, TOL)
    assert f is not None and f.message == "the right items in a different order"
    assert f.details == ("first at [0]: got ('a', 'c', 2), expected ('a', 'b', 3)",)
    f = check_items(returned([("a", "b", torch.tensor(3)), ("b", "a", 2), ("a", "c", 2)]), exp, NOCALL, TOL)
    assert (
        f is not None and f.message == "item [0] has the types (str, str, Tensor), expected (str, str, int)"
    )
    f = check_items(returned([("a", "b", 3)]), exp, NOCALL, TOL)
    assert f is not None and f.message == "1 item, expected 3"
    assert f.details == ("missing: ('b', 'a', 2), ('a', 'c', 2)",)
    f = check_items(returned((("a", "b", 3),)), exp, NOCALL, TOL)
    assert f is not None and f.message.endswith("expected a list")
    f = check_items(returned([["a", "b", 3], ["b", "a", 2], ["a", "c", 2]]), exp, NOCALL, TOL)
    assert f is not None and "types [str, str, int], expected (str, str, int)" in f.message


def test_check_floats_wants_python_floats_within_tolerance():
    exp = returned((0.01, 0.001))
    assert check_floats(returned((0.01 * (1 + 1e-8), 0.001)), exp, NOCALL, TOL) is None
    f = check_floats(returned((0.1, 0.001)), exp, NOCALL, TOL)
    assert f is not None and f.message == "1 / 2 values differ"
    assert f.details[0] == "first at [0]: got 0.1000, expected 0.0100"
    f = check_floats(returned((torch.tensor(0.01), 0.001)), exp, NOCALL, TOL)
    assert f is not None and "expected a Python float (use float(...) or .item())" in f.message
    f = check_floats(returned([0.01, 0.001]), exp, NOCALL, TOL)
    assert f is not None and f.message.startswith("returned [0.01, 0.001], expected a tuple of 2 floats")
    f = check_floats(returned([1e-4, 1e-3]), returned([1e-4, 1e-4, 1e-3]), NOCALL, TOL)
    assert f is not None and f.message == "2 values, expected 3"


def test_check_exact_tensor_counts():
    exp = returned(torch.tensor([[1, 0], [2, 3]]))
    assert check_exact_tensor(returned(torch.tensor([[1, 0], [2, 3]])), exp, NOCALL, TOL) is None
    f = check_exact_tensor(returned(torch.tensor([[1, 2], [0, 3]])), exp, NOCALL, TOL)
    assert f is not None and f.message == "2 / 4 values differ"
    assert f.details == ("first at (0, 1): got 2, expected 0",)
    f = check_exact_tensor(returned(torch.tensor([[1.0, 0], [2, 3]])), exp, NOCALL, TOL)
    assert f is not None and f.message.startswith("dtype float32, expected int64")


def test_slices_cross_the_wire_as_arguments_only():
    blobs: list[bytes] = []
    for s in (slice(1e-5, 1e-3), slice(None, 0.01), slice(1, 10, 2)):
        encoded = wire.encode_arg(s, blobs)
        assert wire.decode_value(encoded, blobs, allow_path=True) == s
        with pytest.raises(wire.ProtocolError):
            wire.decode_value(encoded, blobs)  # never accepted as a result
    bad = {"t": "slice", "items": [{"t": "str", "v": "x"}, {"t": "none"}, {"t": "none"}]}
    with pytest.raises(wire.ProtocolError):
        wire.decode_value(bad, [], allow_path=True)
    assert show_literal(slice(None, 1e-3)) == "slice(None, 0.001)"
    assert show_literal(slice(1e-6, 1e-4)) == "slice(1e-06, 0.0001)"
    assert math.isclose(eval(show_literal(slice(3e-5, 2e-3))).stop, 2e-3)
