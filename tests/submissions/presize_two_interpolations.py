"""Mistake: resizes the batch first, then warps it: two interpolations instead of one."""

import torch.nn.functional as F


def presize_batch(batch, thetas, size):
    small = F.interpolate(batch, size=(size, size), mode="bilinear", align_corners=False)
    grid = F.affine_grid(thetas.to(small.dtype), list(small.shape), align_corners=False)
    return F.grid_sample(small, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
