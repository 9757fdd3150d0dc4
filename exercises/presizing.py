"""Presizing (fastbook chapter 5, "Presizing"), fastai-style.

Presizing works in two steps:
  1. per item, on the CPU: crop the largest square and resize it to a size much larger than the
     training size (the book uses `Resize(460)`), so every item has the same shape;
  2. per batch, on the GPU: do every augmentation (flip, rotate, zoom, shift) AND the final resize
     to the training size (224) as ONE affine warp, so the pixels are interpolated only once.

The conventions below are this kit's reference. They follow fastai's ideas but are not bit-equal
to fastai; where fastai differs, the docstring says so.

Replace each `raise NotImplementedError` with your code, then grade one function with
`grade --only presizing.item_resize` (or `grade` for all of them).
"""

import math

import torch
import torch.nn.functional as F


def item_resize(img: torch.Tensor, size: int, pos: tuple[float, float] = (0.5, 0.5)) -> torch.Tensor:
    """Crop the largest square of one image and resize it to `size x size`.

    img:  float tensor of shape (C, H, W).
    size: the output side in pixels.
    pos:  (x, y) fractions in [0, 1] saying where the square sits: (0, 0) top-left, (1, 1)
          bottom-right, (0.5, 0.5) the centre. Validation always uses the centre; the training set
          draws pos at random (fastai's `Resize` does exactly this).
    Returns a tensor of shape (C, size, size), same dtype as `img`.

    Steps:
        side = min(H, W)
        left = int(pos[0] * (W - side))      # x goes with the width
        top  = int(pos[1] * (H - side))      # y goes with the height
        crop = img[:, top:top + side, left:left + side]
    then resize `crop` to (size, size) with
        F.interpolate(crop[None], size=(size, size), mode="bilinear",
                      align_corners=False, antialias=True)
    and drop the batch dimension again (`F.interpolate` wants (N, C, H, W)).

    Worked example: a 375x500 (H x W) photo, size 460, pos (0.5, 0.5): side = 375,
    left = int(0.5 * 125) = 62, top = 0, so the crop is columns 62..436, all rows, then scaled up
    to 460x460. With pos (1.0, 0.5) the crop is the right-most square, columns 125..499.

    `antialias=True` is what Pillow's bilinear filter (used by fastai's Resize) does when it
    shrinks an image: it averages all the pixels under each output pixel. Without it a big
    shrink skips pixels and aliases. fastai crops with Pillow on a PIL image (and its square can
    be 1 px smaller through float rounding); the kit works on tensors.
    """
    raise NotImplementedError


def augment_matrix(
    angle_deg: float, scale: float, flip: bool, translate: tuple[float, float] = (0.0, 0.0)
) -> torch.Tensor:
    """Build ONE 2x3 affine matrix `theta` for `F.affine_grid(theta, size, align_corners=False)`.

    angle_deg: rotation in degrees; POSITIVE turns the picture COUNTER-CLOCKWISE on screen.
    scale:     zoom factor; scale > 1 zooms IN (the content gets bigger), scale < 1 zooms out.
    flip:      True mirrors the picture left-right.
    translate: (tx, ty) added to the sampling position, in normalised units (2 = full width).
    Returns a float32 tensor of shape (2, 3).

    How affine_grid reads theta: for every OUTPUT pixel at normalised coordinates (x, y) (x to
    the right, y DOWN, both in [-1, 1]) it looks up the INPUT at theta @ [x, y, 1]. So theta maps
    output to input, the inverse of how the picture seems to move.

    In 3x3 homogeneous form (a in radians: `math.radians(angle_deg)`):

        rotate(a) = [[cos a, -sin a, 0],      flip_x = [[-1, 0, 0],   (identity when not flip)
                     [sin a,  cos a, 0],                [ 0, 1, 0],
                     [0,      0,     1]]                [ 0, 0, 1]]

        zoom(1/scale) = [[1/scale, 0, 0],     shift(t) = [[1, 0, tx],
                         [0, 1/scale, 0],                 [0, 1, ty],
                         [0, 0,       1]]                 [0, 0, 1]]

        theta = (shift(translate) @ zoom(1/scale) @ flip_x @ rotate(a))[:2]

    Why these signs: with y pointing down, the output's top-middle (0, -1) reads the input at
    rotate(90 deg) @ (0, -1) = (1, 0), the right-middle, so a dot on the right moves to the top:
    counter-clockwise. Zoom uses 1/scale because reading from a SMALLER input region enlarges it.
    The shift is applied last, so it is not rotated or zoomed. Order matters: flip and rotate do
    not commute.

    Worked example: augment_matrix(90, 2.0, False) -> [[0.0, -0.5, 0.0], [0.5, 0.0, 0.0]]
    (up to float rounding of cos 90 deg). augment_matrix(0, 1.0, True) -> [[-1, 0, 0], [0, 1, 0]].

    Where fastai differs: its `rotate_mat` uses the opposite sign ([[cos, sin], [-sin, cos]]), so a
    positive angle turns the picture CLOCKWISE there; it multiplies Flip @ Rotate @ Zoom, puts the
    zoom centre inside its zoom matrix, corrects for non-square images, and uses
    align_corners=True. The kit always outputs a square and uses align_corners=False.
    """
    raise NotImplementedError


def presize_batch(batch: torch.Tensor, thetas: torch.Tensor, size: int) -> torch.Tensor:
    """Warp and resize a whole batch in ONE interpolation.

    batch:  float tensor (N, C, H, W): the large items from `item_resize` (for example H = W = 460).
    thetas: tensor (N, 2, 3), one `augment_matrix` per item (identity [[1,0,0],[0,1,0]] = no
            augmentation, what validation uses).
    size:   the final side (for example 224).
    Returns (N, C, size, size), same dtype as `batch`.

    Steps:
        grid = F.affine_grid(thetas, (N, C, size, size), align_corners=False)
        out  = F.grid_sample(batch, grid, mode="bilinear",
                             padding_mode="reflection", align_corners=False)
    Cast `thetas` to `batch.dtype` first (`grid_sample` wants the grid and the input in the same
    dtype). Go straight from H x W to size x size: do NOT `F.interpolate` to `size` first and then
    warp. That is the "traditional" resize-then-augment pipeline the book's figure compares
    against: every extra interpolation blurs the picture again, and a rotation of an already
    small picture runs out of pixels sooner.

    padding_mode="reflection" fills the corners a rotation or zoom-out uncovers with a mirror
    image of the picture instead of black (the book's "spurious empty zones").

    Worked example: batch (2, 3, 460, 460), thetas = torch.stack([augment_matrix(10, 1.1, True),
    augment_matrix(0, 1.0, False)]), size 224 -> (2, 3, 224, 224); item 1 is just a resize.

    Where fastai differs: fastai uses align_corners=True, and (in current versions, with
    `min_scale`) a second grid_sample for the random resized crop plus an area pre-shrink; the
    book describes the idealised single interpolation that this function does.
    """
    raise NotImplementedError
