"""A student's presizing: item_resize forgets antialiasing; presize_batch resizes, then warps (two interpolations)."""

import math

import torch
import torch.nn.functional as F


def item_resize(img: torch.Tensor, size: int, pos: tuple[float, float] = (0.5, 0.5)) -> torch.Tensor:
    """Crop the largest square of a (C, H, W) image at ``pos`` and resize it to (C, size, size)."""
    _, h, w = img.shape
    side = min(h, w)
    left = int(pos[0] * (w - side))
    top = int(pos[1] * (h - side))
    crop = img[:, top : top + side, left : left + side]
    out = F.interpolate(
        crop.unsqueeze(0), size=(size, size), mode="bilinear", align_corners=False
    )
    return out.squeeze(0)


def _matmul3(*mats):
    """Product of 3x3 matrices given as nested lists (left to right)."""
    out = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    for m in mats:
        out = [[sum(out[i][k] * m[k][j] for k in range(3)) for j in range(3)] for i in range(3)]
    return out


def augment_matrix(
    angle_deg: float, scale: float, flip: bool, translate: tuple[float, float] = (0.0, 0.0)
) -> torch.Tensor:
    """theta (2, 3) float32 = shift(translate) @ zoom(1/scale) @ flip_x @ rotate(angle), top two rows."""
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    rotate = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
    fx = -1.0 if flip else 1.0
    flip_x = [[fx, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    z = 1.0 / scale
    zoom = [[z, 0.0, 0.0], [0.0, z, 0.0], [0.0, 0.0, 1.0]]
    tx, ty = translate
    shift = [[1.0, 0.0, float(tx)], [0.0, 1.0, float(ty)], [0.0, 0.0, 1.0]]
    theta = _matmul3(shift, zoom, flip_x, rotate)
    return torch.tensor(theta[:2], dtype=torch.float32)


def presize_batch(batch: torch.Tensor, thetas: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the batch first, then warp it."""
    small = F.interpolate(batch, size=(size, size), mode="bilinear", align_corners=False)
    grid = F.affine_grid(thetas.to(small.dtype), list(small.shape), align_corners=False)
    return F.grid_sample(small, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
