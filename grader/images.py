"""Synthetic images for the presizing exercise, and the exact picture to measure them against.

Students can rebuild any case with these functions (``grader.images.synthetic("rings", 3, 128, 128)``).
The "rings" scene is an analytic function of the normalised coordinates, so the exact result of an
affine augmentation can be rendered directly at the output size and used as ground truth (PSNR).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

KINDS = ("gradient", "checkerboard", "noise", "rings")


def _grid(h: int, w: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates in [-1, 1] (align_corners=False convention): (x, y), each [H, W]."""
    ys = (2 * torch.arange(h, dtype=dtype) + 1) / h - 1
    xs = (2 * torch.arange(w, dtype=dtype) + 1) / w - 1
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return x, y


def rings_scene(x: torch.Tensor, y: torch.Tensor, channel: int, variant: int = 0) -> torch.Tensor:
    """A continuous test scene with fine rings, a soft edge and a colour ramp; values in [0, 1]."""
    v = variant % 7
    cx, cy = 0.15 * math.cos(v), 0.1 * math.sin(v)
    r = torch.sqrt((x - cx) ** 2 + (y - cy) ** 2)
    freq = 14.0 + 3.0 * channel + v
    rings = 0.5 + 0.5 * torch.cos(freq * math.pi * r)
    edge = torch.sigmoid(12.0 * (x + 0.6 * y - 0.2))
    ramp = 0.5 + 0.5 * (x if channel % 2 == 0 else y)
    return (0.45 * rings + 0.35 * edge + 0.2 * ramp).clamp(0, 1)


def synthetic(
    kind: str, channels: int, h: int, w: int, seed: int = 0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """A [C, H, W] image in [0, 1] of the given kind (gradient, checkerboard, noise or rings)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    x, y = _grid(h, w, torch.float64 if dtype is torch.float64 else torch.float32)
    planes = []
    for c in range(channels):
        if kind == "gradient":
            plane = (0.5 + 0.5 * (x * math.cos(c + seed) + y * math.sin(c + seed))).clamp(0, 1)
        elif kind == "checkerboard":
            cell = 4 + (seed % 5) + c
            iy = torch.arange(h).unsqueeze(1) // cell
            ix = torch.arange(w).unsqueeze(0) // cell
            plane = ((ix + iy + c) % 2).to(x.dtype) * (0.8 - 0.1 * c) + 0.1
        elif kind == "noise":
            g = torch.Generator().manual_seed(seed * 101 + c)
            plane = torch.rand(h, w, generator=g, dtype=x.dtype)
        else:
            plane = rings_scene(x, y, c, seed)
        planes.append(plane)
    return torch.stack(planes).to(dtype)


def synthetic_batch(
    n: int, channels: int, h: int, w: int, seed: int = 0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """[N, C, H, W]: item i is ``synthetic(KINDS[(seed + i) % 4], ...)``; rings items use variant seed + i."""
    items = [synthetic(KINDS[(seed + i) % len(KINDS)], channels, h, w, seed + i, dtype) for i in range(n)]
    return torch.stack(items)


def rings_batch(
    n: int, channels: int, size: int, seed: int = 0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """[N, C, size, size] of rings scenes (variants seed .. seed + n - 1): the showcase input."""
    return torch.stack([synthetic("rings", channels, size, size, seed + i, dtype) for i in range(n)])


def affine(
    angle_deg: float, scale: float, flip: bool, translate: tuple[float, float] = (0.0, 0.0)
) -> torch.Tensor:
    """The kit's reference augmentation matrix [2, 3] (float32): shift @ zoom(1/scale) @ flip_x @ rotate."""
    a = math.radians(angle_deg)
    rotate = torch.tensor(
        [[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]]
    )
    flip_x = torch.diag(torch.tensor([-1.0 if flip else 1.0, 1.0, 1.0]))
    zoom = torch.diag(torch.tensor([1.0 / scale, 1.0 / scale, 1.0]))
    shift = torch.tensor([[1.0, 0.0, translate[0]], [0.0, 1.0, translate[1]], [0.0, 0.0, 1.0]])
    return (shift.double() @ zoom.double() @ flip_x.double() @ rotate.double())[:2].float()


def random_thetas(n: int, seed: int = 0, max_angle: float = 30.0, max_scale: float = 1.5) -> torch.Tensor:
    """[N, 2, 3] random augmentation matrices (angle, zoom-in, flip, small shift), seeded."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        u = torch.rand(5, generator=g, dtype=torch.float64).tolist()
        angle = (2 * u[0] - 1) * max_angle
        scale = 1.0 + u[1] * (max_scale - 1.0)
        flip = u[2] < 0.5
        shift = ((2 * u[3] - 1) * 0.1, (2 * u[4] - 1) * 0.1)
        out.append(affine(angle, scale, flip, shift))
    return torch.stack(out)


def thetas(*params: tuple[float, float, bool, tuple[float, float]]) -> torch.Tensor:
    """[N, 2, 3] from explicit (angle_deg, scale, flip, translate) tuples."""
    return torch.stack([affine(*p) for p in params])


def _reflect(v: torch.Tensor) -> torch.Tensor:
    """Reflect coordinates into [-1, 1] about the image edges (grid_sample's reflection, align_corners=False)."""
    period = 4.0
    v = torch.remainder(v + 1.0, period)
    return torch.where(v > 2.0, period - v, v) - 1.0


def exact_rings(
    theta: torch.Tensor, channels: int, size: int, variant: int, supersample: int = 4
) -> torch.Tensor:
    """The exact augmented picture: the rings scene sampled at theta-mapped coordinates, area-averaged.

    This is what an ideal, loss-free pipeline would produce at the output size; presizing and
    resize-then-augment are both measured against it.
    """
    s = supersample
    x, y = _grid(size * s, size * s)
    t = theta.to(torch.float64)
    xi = t[0, 0] * x + t[0, 1] * y + t[0, 2]
    yi = t[1, 0] * x + t[1, 1] * y + t[1, 2]
    xi, yi = _reflect(xi), _reflect(yi)
    planes = torch.stack([rings_scene(xi, yi, c, variant) for c in range(channels)])
    return F.avg_pool2d(planes.unsqueeze(0), s)[0].to(torch.float32)


def psnr(img: torch.Tensor, truth: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1] (higher is closer)."""
    mse = float(((img.double().clamp(0, 1) - truth.double()) ** 2).mean())
    return 99.0 if mse == 0 else 10.0 * math.log10(1.0 / mse)


def resize_then_augment(batch: torch.Tensor, thetas_: torch.Tensor, size: int) -> torch.Tensor:
    """The traditional pipeline: resize every item to the final size first, then augment there (two interpolations)."""
    small = F.interpolate(batch, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    grid = F.affine_grid(
        thetas_.to(batch.dtype), [batch.shape[0], batch.shape[1], size, size], align_corners=False
    )
    return F.grid_sample(small, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def presize(batch: torch.Tensor, thetas_: torch.Tensor, size: int) -> torch.Tensor:
    """The kit's reference presizing step: one affine_grid + one grid_sample to the final size."""
    grid = F.affine_grid(
        thetas_.to(batch.dtype), [batch.shape[0], batch.shape[1], size, size], align_corners=False
    )
    return F.grid_sample(batch, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def png_data_uri(img: torch.Tensor, display: int = 128) -> str:
    """A [C, H, W] (C = 1 or 3) image in [0, 1] as a PNG data URI, nearest-scaled to ``display`` px."""
    import base64
    import io

    from PIL import Image

    x = img.detach().float().clamp(0, 1)
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    if x.shape[-1] != display:
        x = F.interpolate(x.unsqueeze(0), size=(display, display), mode="nearest")[0]
    arr = (x * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
