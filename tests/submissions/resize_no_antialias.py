"""Mistake: resizes with antialias=False, so shrinking skips pixels (aliasing)."""

import torch.nn.functional as F


def item_resize(img, size, pos=(0.5, 0.5)):
    _, h, w = img.shape
    side = min(h, w)
    left = int(pos[0] * (w - side))
    top = int(pos[1] * (h - side))
    crop = img[:, top : top + side, left : left + side]
    out = F.interpolate(
        crop.unsqueeze(0), size=(size, size), mode="bilinear", align_corners=False, antialias=False
    )
    return out.squeeze(0)
