"""Spec of ``exercises/presizing.py``: item resize, one composed augmentation matrix, one interpolation."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from grader import images
from grader.explain import check_tensor, check_unmutated
from grader.model import Figure, Misconception
from grader.outcome import Returned
from grader.spec import Call, CaseSpec, Diagnosis, Exercise, Tolerance, call, expr

# ----------------------------------------------------------------------------- references


def ref_item_resize(img: torch.Tensor, size: int, pos: tuple[float, float] = (0.5, 0.5)) -> torch.Tensor:
    _, h, w = img.shape
    side = min(h, w)
    left, top = int(pos[0] * (w - side)), int(pos[1] * (h - side))
    crop = img[:, top : top + side, left : left + side]
    return F.interpolate(
        crop.unsqueeze(0), size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )[0]


def ref_augment_matrix(
    angle_deg: float, scale: float, flip: bool, translate: tuple[float, float] = (0.0, 0.0)
) -> torch.Tensor:
    return images.affine(angle_deg, scale, flip, translate)


def ref_presize_batch(batch: torch.Tensor, thetas: torch.Tensor, size: int) -> torch.Tensor:
    return images.presize(batch, thetas, size)


# ----------------------------------------------------------------------------- variants (misconceptions)


def _resize(img: torch.Tensor, size: int, left: int, top: int, side: int, **kw: Any) -> torch.Tensor:
    crop = img[:, top : top + side, left : left + side]
    opts: dict[str, Any] = {"mode": "bilinear", "align_corners": False, "antialias": True} | kw
    return F.interpolate(crop.unsqueeze(0), size=(size, size), **opts)[0]


def _crop_box(img: torch.Tensor, pos: tuple[float, float]) -> tuple[int, int, int]:
    _, h, w = img.shape
    side = min(h, w)
    return int(pos[0] * (w - side)), int(pos[1] * (h - side)), side


def _no_antialias(img: torch.Tensor, size: int, pos: tuple[float, float] = (0.5, 0.5)) -> torch.Tensor:
    return _resize(img, size, *_crop_box(img, pos), antialias=False)


def _align_corners(img: torch.Tensor, size: int, pos: tuple[float, float] = (0.5, 0.5)) -> torch.Tensor:
    return _resize(img, size, *_crop_box(img, pos), align_corners=True)


def _squish(img: torch.Tensor, size: int, pos: tuple[float, float] = (0.5, 0.5)) -> torch.Tensor:
    opts: dict[str, Any] = {"mode": "bilinear", "align_corners": False, "antialias": True}
    return F.interpolate(img.unsqueeze(0), size=(size, size), **opts)[0]


def _pos_swapped(img: torch.Tensor, size: int, pos: tuple[float, float] = (0.5, 0.5)) -> torch.Tensor:
    return _resize(img, size, *_crop_box(img, (pos[1], pos[0])))


def _centre_only(img: torch.Tensor, size: int, pos: tuple[float, float] = (0.5, 0.5)) -> torch.Tensor:
    return _resize(img, size, *_crop_box(img, (0.5, 0.5)))


def _mats(
    angle_deg: float, scale: float, flip: bool, translate: tuple[float, float], radians: bool = True
) -> dict:
    a = math.radians(angle_deg) if radians else angle_deg
    d = torch.float64
    return {
        "R": torch.tensor(
            [[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]], dtype=d
        ),
        "Rcw": torch.tensor(
            [[math.cos(a), math.sin(a), 0], [-math.sin(a), math.cos(a), 0], [0, 0, 1]], dtype=d
        ),
        "F": torch.diag(torch.tensor([-1.0 if flip else 1.0, 1.0, 1.0], dtype=d)),
        "Z": torch.diag(torch.tensor([1 / scale, 1 / scale, 1.0], dtype=d)),
        "Zs": torch.diag(torch.tensor([scale, scale, 1.0], dtype=d)),
        "S": torch.tensor([[1, 0, translate[0]], [0, 1, translate[1]], [0, 0, 1]], dtype=d),
    }


def _affine_variant(order: str, radians: bool = True) -> Any:
    def variant(
        angle_deg: float, scale: float, flip: bool, translate: tuple[float, float] = (0.0, 0.0)
    ) -> torch.Tensor:
        m = _mats(angle_deg, scale, flip, translate, radians)
        out = torch.eye(3, dtype=torch.float64)
        for name in order.split():
            out = out @ m[name]
        return out[:2].float()

    return variant


def _two_interpolations(batch: torch.Tensor, thetas: torch.Tensor, size: int) -> torch.Tensor:
    small = F.interpolate(batch, size=(size, size), mode="bilinear", align_corners=False)
    grid = F.affine_grid(
        thetas.to(batch.dtype), [batch.shape[0], batch.shape[1], size, size], align_corners=False
    )
    return F.grid_sample(small, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _sample(batch: torch.Tensor, thetas: torch.Tensor, size: int, padding: str, align: bool) -> torch.Tensor:
    grid = F.affine_grid(
        thetas.to(batch.dtype), [batch.shape[0], batch.shape[1], size, size], align_corners=align
    )
    return F.grid_sample(batch, grid, mode="bilinear", padding_mode=padding, align_corners=align)


# ----------------------------------------------------------------------------- tolerances


def image_tol(c: Call, expected: Any) -> Tolerance:
    scale = float(expected.abs().max()) if isinstance(expected, torch.Tensor) and expected.numel() else 1.0
    return Tolerance(rtol=1e-4, atol=2e-4 * max(1.0, scale))


def matrix_tol(c: Call, expected: Any) -> Tolerance:
    return Tolerance(rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- cases


def img(kind: str, c: int, h: int, w: int, seed: int = 0, dtype: str = "") -> Any:
    dt = f", dtype={dtype}" if dtype else ""
    return expr(f"grader.images.synthetic({kind!r}, {c}, {h}, {w}, seed={seed}{dt})")


def resize_case(id: str, label: str, build: Any, random: bool = False) -> CaseSpec:
    return CaseSpec(id, label, build, random=random)


def _random_pos_case(s: int) -> Call:
    g = torch.Generator().manual_seed(s)
    u = torch.rand(2, generator=g, dtype=torch.float64).tolist()
    pos = (round(u[0], 3), round(u[1], 3))
    return call(img("rings", 3, 300, 420, seed=s % 97), 96, pos=pos)


ITEM_RESIZE = Exercise(
    id="presizing.item_resize",
    module="presizing",
    func="item_resize",
    title="item_resize(img, size, pos=(0.5, 0.5))",
    points=2,
    reference=ref_item_resize,
    cases=(
        resize_case(
            "square-same-size",
            "a square image already at the size",
            lambda s: call(img("gradient", 3, 32, 32), 32),
        ),
        resize_case(
            "landscape-centre",
            "a landscape image, centre crop",
            lambda s: call(img("gradient", 3, 48, 64), 32),
        ),
        resize_case(
            "portrait-centre",
            "a portrait image, centre crop",
            lambda s: call(img("checkerboard", 3, 80, 60), 32),
        ),
        resize_case(
            "book-500x375",
            "the book's 500×375 photo at validation (crop box 62..437)",
            lambda s: call(img("rings", 3, 375, 500), 224),
        ),
        resize_case(
            "pos-left-top",
            "crop at pos=(0, 0)",
            lambda s: call(img("rings", 3, 150, 200, seed=1), 64, pos=(0.0, 0.0)),
        ),
        resize_case(
            "pos-right-bottom",
            "crop at pos=(1, 1), portrait",
            lambda s: call(img("rings", 3, 200, 150, seed=2), 64, pos=(1.0, 1.0)),
        ),
        resize_case(
            "pos-train",
            "a training-set position (0.25, 0.75), landscape",
            lambda s: call(img("rings", 3, 150, 200, seed=3), 64, pos=(0.25, 0.75)),
        ),
        resize_case(
            "pos-train-portrait",
            "a training-set position (0.8, 0.1), portrait",
            lambda s: call(img("checkerboard", 3, 200, 150, seed=4), 64, pos=(0.8, 0.1)),
        ),
        resize_case("upsample", "a small image made bigger", lambda s: call(img("gradient", 3, 40, 30), 64)),
        resize_case("grayscale", "one channel", lambda s: call(img("rings", 1, 100, 120), 48)),
        resize_case(
            "float64", "float64 pixels", lambda s: call(img("rings", 3, 90, 120, dtype="torch.float64"), 40)
        ),
        resize_case(
            "noise",
            "noise, shrunk 3× (antialiasing matters)",
            lambda s: call(img("noise", 3, 200, 300, seed=5), 64),
        ),
        CaseSpec("random-pos", "a random training position", _random_pos_case),
    ),
    checks=(check_tensor, check_unmutated),
    tolerance=image_tol,
    diagnoses=(
        Diagnosis(
            Misconception(
                "resize-squish",
                "resized the whole image (squish) instead of cropping a square",
                "Without the crop the picture is stretched to a square: every breed looks thinner or fatter.",
                "Crop the largest square (side = min(H, W)) first, then resize it.",
            ),
            variant=_squish,
        ),
        Diagnosis(
            Misconception(
                "resize-no-antialias",
                "bilinear without antialiasing",
                "Shrinking with plain bilinear samples only 4 pixels per output pixel and aliases fine detail; "
                "Pillow's bilinear (what fastai uses) averages all of them.",
                "Pass antialias=True to F.interpolate.",
            ),
            variant=_no_antialias,
        ),
        Diagnosis(
            Misconception(
                "resize-align-corners",
                "align_corners=True",
                "align_corners=True maps corner pixel centres onto each other, a different grid from Pillow's.",
                "Use align_corners=False (pixel areas, not pixel centres, line up).",
            ),
            variant=_align_corners,
        ),
        Diagnosis(
            Misconception(
                "resize-pos-swapped",
                "pos = (x, y) read as (y, x)",
                "pos[0] is the horizontal fraction (left), pos[1] the vertical one (top).",
                "left = int(pos[0] * (W - side)), top = int(pos[1] * (H - side)).",
            ),
            variant=_pos_swapped,
        ),
        Diagnosis(
            Misconception(
                "resize-crop-centre-only",
                "always the centre square",
                "On the training set the crop position is random (pos); only validation uses the centre.",
                "Use pos for the crop's top-left corner.",
            ),
            variant=_centre_only,
        ),
        Diagnosis(
            Misconception(
                "mutates-input",
                "changes its input tensor in place",
                "The caller's image was modified.",
                "Slice and interpolate into new tensors.",
            ),
            detect=lambda got, exp, c: isinstance(got, Returned) and bool(got.mutated),
        ),
    ),
    hints=(
        "Two steps: cut out the largest square, then resize that square to size × size.",
        "side = min(H, W); left = int(pos[0] * (W - side)); top = int(pos[1] * (H - side)); "
        "then F.interpolate on a batch of one.",
        "F.interpolate(crop[None], size=(size, size), mode='bilinear', align_corners=False, antialias=True)[0]",
    ),
)


def _random_affine_case(s: int) -> Call:
    g = torch.Generator().manual_seed(s)
    u = torch.rand(5, generator=g, dtype=torch.float64).tolist()
    angle = round((2 * u[0] - 1) * 40, 2)
    scale = round(1 + u[1] * 0.6, 3)
    flip = u[2] < 0.5
    translate = (round((2 * u[3] - 1) * 0.2, 3), round((2 * u[4] - 1) * 0.2, 3))
    return call(angle, scale, flip, translate=translate)


AUGMENT_MATRIX = Exercise(
    id="presizing.augment_matrix",
    module="presizing",
    func="augment_matrix",
    title="augment_matrix(angle_deg, scale, flip, translate=(0, 0))",
    points=2,
    reference=ref_augment_matrix,
    cases=(
        CaseSpec("identity", "no augmentation", lambda s: call(0.0, 1.0, False), random=False),
        CaseSpec("flip-only", "a left-right flip", lambda s: call(0.0, 1.0, True), random=False),
        CaseSpec(
            "rotate-90", "rotate 90° (counter-clockwise)", lambda s: call(90.0, 1.0, False), random=False
        ),
        CaseSpec("zoom-in", "zoom in ×2", lambda s: call(0.0, 2.0, False), random=False),
        CaseSpec("rotate-zoom", "rotate 30° and zoom ×1.25", lambda s: call(30.0, 1.25, False), random=False),
        CaseSpec(
            "translate-only",
            "a shift only",
            lambda s: call(0.0, 1.0, False, translate=(0.1, -0.2)),
            random=False,
        ),
        CaseSpec("flip-rotate", "flip and rotate 30°", lambda s: call(30.0, 1.0, True), random=False),
        CaseSpec(
            "everything",
            "rotate -15°, zoom ×1.5, flip, shift",
            lambda s: call(-15.0, 1.5, True, translate=(0.05, 0.1)),
            random=False,
        ),
        CaseSpec("random-1", "random augmentation", _random_affine_case),
        CaseSpec("random-2", "random augmentation", _random_affine_case),
        CaseSpec("random-3", "random augmentation", _random_affine_case),
    ),
    checks=(check_tensor,),
    tolerance=matrix_tol,
    diagnoses=(
        Diagnosis(
            Misconception(
                "affine-clockwise",
                "the rotation turns clockwise",
                "With y pointing down, [[cos, sin], [-sin, cos]] (fastai's rotate_mat) turns the picture clockwise; "
                "the kit's convention is counter-clockwise for a positive angle.",
                "theta maps OUTPUT to INPUT coordinates: use [[cos a, -sin a], [sin a, cos a]].",
            ),
            variant=_affine_variant("S Z F Rcw"),
        ),
        Diagnosis(
            Misconception(
                "affine-zoom-not-inverted",
                "zoom by scale instead of 1/scale",
                "theta maps output to input coordinates: to zoom IN, the output must look at a SMALLER "
                "region of the input, so the matrix scales by 1/scale.",
                "zoom(1/scale) = diag(1/scale, 1/scale, 1).",
            ),
            variant=_affine_variant("S Zs F R"),
        ),
        Diagnosis(
            Misconception(
                "affine-wrong-order",
                "the flip and the rotation composed in the wrong order",
                "Matrix products do not commute: rotate @ flip mirrors the rotation's direction.",
                "theta = shift @ zoom @ flip @ rotate, in that order.",
            ),
            variant=_affine_variant("S Z R F"),
        ),
        Diagnosis(
            Misconception(
                "affine-degrees-not-radians",
                "degrees passed to cos/sin",
                "math.cos and torch.cos take radians: 30 (degrees) is almost 5 full turns in radians.",
                "math.radians(angle_deg) first.",
            ),
            variant=_affine_variant("S Z F R", radians=False),
        ),
        Diagnosis(
            Misconception(
                "affine-translate-rotated",
                "the shift is rotated and zoomed",
                "Multiplying the shift first (rightmost) moves it through the rotation, flip and zoom.",
                "The shift comes last: the leftmost factor, shift @ zoom @ flip @ rotate.",
            ),
            variant=_affine_variant("Z F R S"),
        ),
    ),
    hints=(
        "Build each augmentation as a 3×3 matrix in homogeneous coordinates, multiply them, keep the top 2 rows.",
        "theta maps output to input: rotate(a) = [[cos a, -sin a, 0], [sin a, cos a, 0], [0, 0, 1]] (a in radians), "
        "zoom by 1/scale, flip = diag(-1, 1, 1).",
        "(shift @ zoom @ flip @ rotate)[:2], in float32",
    ),
)


def batch(n: int, c: int, size: int, seed: int = 0, kind: str = "mixed", dtype: str = "") -> Any:
    dt = f", dtype={dtype}" if dtype else ""
    if kind == "rings":
        return expr(f"grader.images.rings_batch({n}, {c}, {size}, seed={seed}{dt})")
    return expr(f"grader.images.synthetic_batch({n}, {c}, {size}, {size}, seed={seed}{dt})")


def thetas(code: str) -> Any:
    return expr(f"grader.images.{code}")


SHOWCASE_SIZE = 64


def presize_figures(planned: list[Any], outcomes: list[Any], pictures: bool = True) -> tuple[Figure, ...]:
    """PSNR figures (and, with ``pictures``, images) from the showcase case: presizing vs resize-then-augment."""
    for pc, got in zip(planned, outcomes):
        if not pc.spec.showcase or not isinstance(got, Returned) or not isinstance(got.value, torch.Tensor):
            continue
        b, th, size = pc.call.values
        if got.value.shape != (b.shape[0], b.shape[1], size, size):
            continue
        fixed = pc.memo.get("presize_figures")
        if fixed is None:  # the same for every submission: computed once per plan
            ref = ref_presize_batch(b, th, size)
            rta = images.resize_then_augment(b, th, size)
            seed = pc.seed % 1000
            truth = torch.stack(
                [images.exact_rings(th[i], b.shape[1], size, seed + i) for i in range(b.shape[0])]
            )
            p_ref = sum(images.psnr(ref[i], truth[i]) for i in range(len(b))) / len(b)
            p_rta = sum(images.psnr(rta[i], truth[i]) for i in range(len(b))) / len(b)
            fixed = pc.memo["presize_figures"] = {
                "ref": ref,
                "rta": rta,
                "truth": truth,
                "p_ref": p_ref,
                "p_rta": p_rta,
            }
        ref, rta, truth, p_ref, p_rta = (fixed[k] for k in ("ref", "rta", "truth", "p_ref", "p_rta"))
        student = got.value.float()
        p_student = sum(images.psnr(student[i], truth[i]) for i in range(len(b))) / len(b)
        diff = (student[0] - ref[0]).abs()
        diff_img = (diff / max(float(diff.max()), 1e-6)).clamp(0, 1)
        if pictures and "pictures" not in fixed:
            fixed["pictures"] = tuple(images.png_data_uri(x) for x in (b[0], ref[0], rta[0]))
        shown = fixed.get("pictures", ())
        return (
            Figure(
                kind="images",
                title="Presizing: one interpolation instead of two",
                caption=(
                    f"Item 1 of {len(b)}: the {b.shape[-1]}×{b.shape[-1]} input, your output, the reference, "
                    f"resize-then-augment, and |yours − reference| (scaled to its maximum, "
                    f"{float(diff.max()):.2g}). PSNR against the exact augmented picture, averaged over the batch."
                ),
                images=(
                    (
                        ("input", shown[0]),
                        ("yours", images.png_data_uri(student[0])),
                        ("reference (presizing)", shown[1]),
                        ("resize then augment", shown[2]),
                        ("difference", images.png_data_uri(diff_img)),
                    )
                    if pictures
                    else ()
                ),
                metrics=(
                    ("PSNR yours (dB)", round(p_student, 2)),
                    ("PSNR presizing (dB)", round(p_ref, 2)),
                    ("PSNR resize then augment (dB)", round(p_rta, 2)),
                ),
            ),
        )
    return ()


PRESIZE_BATCH = Exercise(
    id="presizing.presize_batch",
    module="presizing",
    func="presize_batch",
    title="presize_batch(batch, thetas, size)",
    points=2,
    reference=ref_presize_batch,
    cases=(
        CaseSpec(
            "identity-same-size",
            "no augmentation, same size",
            lambda s: call(batch(1, 3, 32, seed=1), thetas("thetas((0.0, 1.0, False, (0.0, 0.0)))"), 32),
            random=False,
        ),
        CaseSpec(
            "identity-downsize",
            "no augmentation, 64 → 32",
            lambda s: call(batch(1, 3, 64, seed=2), thetas("thetas((0.0, 1.0, False, (0.0, 0.0)))"), 32),
            random=False,
        ),
        CaseSpec(
            "flip",
            "a flip and an identity, 48 → 24",
            lambda s: call(
                batch(2, 3, 48, seed=3),
                thetas("thetas((0.0, 1.0, True, (0.0, 0.0)), (0.0, 1.0, False, (0.0, 0.0)))"),
                24,
            ),
            random=False,
        ),
        CaseSpec(
            "rotate-zoom",
            "rotations and zooms, 96 → 32",
            lambda s: call(
                batch(2, 3, 96, seed=4),
                thetas("thetas((30.0, 1.2, False, (0.0, 0.0)), (-20.0, 1.5, True, (0.1, 0.0)))"),
                32,
            ),
            random=False,
        ),
        CaseSpec(
            "zoom-out",
            "zoom out (the grid leaves the image: reflection padding)",
            lambda s: call(batch(1, 3, 64, seed=5), thetas("thetas((45.0, 0.8, False, (0.0, 0.0)))"), 32),
            random=False,
        ),
        CaseSpec(
            "showcase",
            "4 items 128 → 64 with random augmentations",
            lambda s: call(
                batch(4, 3, 128, seed=s % 1000, kind="rings"),
                thetas(f"random_thetas(4, seed={s % 100000})"),
                64,
            ),
            showcase=True,
        ),
        CaseSpec(
            "book-460-224",
            "the book's sizes: 460 → 224",
            lambda s: call(
                batch(2, 3, 460, seed=s % 1000), thetas(f"random_thetas(2, seed={s % 100000})"), 224
            ),
        ),
        CaseSpec(
            "float64",
            "float64 pixels, one channel",
            lambda s: call(
                batch(2, 1, 40, seed=6, dtype="torch.float64"),
                thetas(f"random_thetas(2, seed={s % 100000})"),
                20,
            ),
        ),
    ),
    checks=(check_tensor, check_unmutated),
    tolerance=image_tol,
    diagnoses=(
        Diagnosis(
            Misconception(
                "presize-two-interpolations",
                "resized first, then augmented: two interpolations",
                "Resizing to the final size and then rotating/zooming interpolates twice and zooms into "
                "already-shrunk pixels: detail is lost that presizing keeps.",
                "Go from the large batch straight to `size` with ONE affine_grid + grid_sample.",
            ),
            variant=_two_interpolations,
        ),
        Diagnosis(
            Misconception(
                "presize-align-corners",
                "align_corners=True",
                "The kit's convention is align_corners=False in both affine_grid and grid_sample "
                "(mixing them shifts the picture by half a pixel).",
                "Pass align_corners=False to both calls.",
            ),
            variant=lambda b, t, s: _sample(b, t, s, "reflection", True),
        ),
        Diagnosis(
            Misconception(
                "presize-zeros-padding",
                "black borders instead of reflection",
                "Where a rotated or zoomed-out grid leaves the image, zeros padding paints black corners "
                "(the 'spurious empty zones' presizing avoids).",
                "padding_mode='reflection' mirrors the picture instead.",
            ),
            variant=lambda b, t, s: _sample(b, t, s, "zeros", False),
        ),
    ),
    hints=(
        "All the augmentation AND the final resize happen in one resampling step.",
        "F.affine_grid(thetas, (N, C, size, size), align_corners=False) gives where each output pixel samples "
        "the input; F.grid_sample reads those places.",
        "F.grid_sample(batch, grid, mode='bilinear', padding_mode='reflection', align_corners=False)",
    ),
    figures=presize_figures,
)

EXERCISES = (ITEM_RESIZE, AUGMENT_MATRIX, PRESIZE_BATCH)
