"""Mistake: ignores pos and always crops the centre square."""

import torch.nn.functional as F


def item_resize(img, size, pos=(0.5, 0.5)):
    _, h, w = img.shape
    side = min(h, w)
    left = (w - side) // 2
    top = (h - side) // 2
    crop = img[:, top : top + side, left : left + side]
    out = F.interpolate(
        crop.unsqueeze(0), size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )
    return out.squeeze(0)
