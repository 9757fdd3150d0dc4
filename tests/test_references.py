"""The references and the lesson's numbers: property tests (Hypothesis) and golden values."""

from __future__ import annotations

import re

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.engine import build_plan
from grader.images import affine, exact_rings, presize, psnr, random_thetas, resize_then_augment, rings_batch
from grader.specs import losses, regex_labels
from grader.specs import select as select_exercises

shapes = st.tuples(st.integers(1, 6), st.integers(1, 8))
scales = st.sampled_from([1e-3, 1.0, 30.0, 1e3])


def tensors(shape, scale, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale


@settings(max_examples=60, deadline=None)
@given(shape=shapes, scale=scales, seed=st.integers(0, 2**31), shift=st.floats(-50, 50))
def test_softmax_shift_invariant_and_normalised(shape, scale, seed, shift):
    x = tensors(shape, scale, seed)
    p = losses.ref_softmax(x, dim=-1)
    assert torch.allclose(p, losses.ref_softmax(x + shift, dim=-1), atol=1e-12)
    assert torch.allclose(p.sum(-1), torch.ones(shape[0], dtype=x.dtype), atol=1e-12)
    assert bool(((p >= 0) & (p <= 1)).all())


@settings(max_examples=60, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**31))
def test_log_softmax_is_log_of_softmax(shape, seed):
    x = tensors(shape, 3.0, seed)
    assert torch.allclose(losses.ref_log_softmax(x), losses.ref_softmax(x).log(), atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 20), seed=st.integers(0, 2**31))
def test_binary_softmax_is_sigmoid_of_difference(n, seed):
    x = tensors((n, 2), 4.0, seed)
    assert torch.allclose(losses.ref_binary_softmax(x), torch.sigmoid(x[:, 0] - x[:, 1]), atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    label=st.from_regex(r"[A-Za-z][A-Za-z_]{0,30}", fullmatch=True),
    n=st.integers(0, 10**6),
    folder=st.sampled_from(["", "images/", "a_1/b_2/", "/abs/x_9.jpg_dir/"]),
)
def test_regex_labeller_inverts_the_file_name(label, n, folder):
    fname = f"{folder}{label}_{n}.jpg"
    assert regex_labels.ref_breed(fname) == label
    assert regex_labels.ref_is_cat(fname) == label[0].isupper()


def test_every_real_file_name_is_labelled_like_the_data_set():
    species = regex_labels.breeds()
    assert len(species) == 37 and sum(v == "cat" for v in species.values()) == 12
    names = regex_labels.pet_filenames()
    assert len(names) == 7390
    for name in names:
        breed = regex_labels.ref_breed(name)
        assert breed in species
        assert regex_labels.ref_is_cat(name) == (species[breed] == "cat")


def test_lesson_numbers_match_pytorch():
    acts = torch.tensor(losses.LESSON_ACTS)
    targ = torch.tensor(losses.LESSON_TARG)
    sm = losses.ref_softmax(acts, dim=1)
    assert torch.allclose(sm, torch.tensor(losses.LESSON_SOFTMAX), atol=1e-4)
    assert torch.allclose(
        (acts[:, 0] - acts[:, 1]).sigmoid(), torch.tensor(losses.LESSON_SIGMOID_DIFF), atol=1e-4
    )
    nll_probs = torch.nn.functional.nll_loss(torch.tensor(losses.LESSON_SOFTMAX), targ, reduction="none")
    assert torch.allclose(nll_probs, torch.tensor(losses.LESSON_NLL_OF_PROBS), atol=1e-4)
    ce = losses.ref_cross_entropy(acts, targ, reduction="none")
    assert torch.allclose(ce, torch.tensor(losses.LESSON_CE_NONE), atol=2e-4)
    assert abs(float(losses.ref_cross_entropy(acts, targ)) - losses.LESSON_CE_MEAN) < 1e-4


def test_book_seed_42_example():
    torch.manual_seed(42)
    acts = torch.randn((6, 2)) * 2
    targ = torch.tensor(losses.LESSON_TARG)
    assert abs(float(losses.ref_cross_entropy(acts, targ)) - losses.BOOK_CE_MEAN) < 1e-4
    col0 = losses.ref_softmax(acts, dim=1)[:, 0]
    assert torch.allclose(col0, torch.tensor(losses.BOOK_SOFTMAX_COL0), atol=1e-4)
    plan = build_plan(select_exercises(["losses.cross_entropy"]))
    case = next(pc for pc in plan.exercises[0].cases if pc.id == "book-seed-42")
    assert torch.equal(case.call.args[0].value, acts)


def test_case_recipes_rebuild_the_inputs():
    plan = build_plan(select_exercises([]))
    namespace = {"torch": torch, "pathlib": __import__("pathlib"), "grader": __import__("grader")}
    for pe in plan.exercises:
        for pc in pe.cases:
            m = re.fullmatch(rf"{pe.exercise.func}\((.*)\)", pc.recipe, flags=re.S)
            assert m, pc.recipe
            args, kwargs = eval(f"(lambda *a, **k: (a, k))({m.group(1)})", namespace)
            rebuilt = list(zip(args, pc.call.args)) + [(kwargs[k], a) for k, a in pc.call.kwargs]
            assert len(args) == len(pc.call.args) and set(kwargs) == {k for k, _ in pc.call.kwargs}
            for arg, original in rebuilt:
                if isinstance(arg, torch.Tensor):
                    assert torch.equal(arg, original.value), (pe.exercise.id, pc.id)
                else:
                    assert arg == original.value, (pe.exercise.id, pc.id)


def test_positive_angle_turns_counter_clockwise():
    img = torch.zeros(1, 1, 9, 9)
    img[0, 0, 4, 8] = 1.0  # a dot at right-middle
    out = presize(img, affine(90.0, 1.0, False)[None], 9)
    assert out[0, 0].argmax().item() == 0 * 9 + 4  # now at top-middle


def test_presizing_keeps_more_detail_than_resize_then_augment():
    batch, th = rings_batch(4, 3, 128, seed=3), random_thetas(4, seed=7)
    truth = [exact_rings(th[i], 3, 64, 3 + i) for i in range(4)]
    one = presize(batch, th, 64)
    two = resize_then_augment(batch, th, 64)
    for i in range(4):
        assert psnr(one[i], truth[i]) > psnr(two[i], truth[i]) + 3.0
