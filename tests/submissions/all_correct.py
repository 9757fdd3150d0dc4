"""Every exercise function of the five modules, correct, in one file."""

import math
import os
import re

import torch
import torch.nn.functional as F

# ---- regex_labels ----


def breed_from_filename(fname):
    name = os.path.basename(os.fspath(fname))
    match = re.fullmatch(r"(.+)_(\d+)\.jpg", name)
    if match is None:
        raise ValueError(f"not a '<breed>_<number>.jpg' file name: {fname!r}")
    return match.group(1)


def is_cat(fname):
    return os.path.basename(os.fspath(fname))[:1].isupper()


# ---- presizing ----


def item_resize(img, size, pos=(0.5, 0.5)):
    _, h, w = img.shape
    side = min(h, w)
    left = int(pos[0] * (w - side))
    top = int(pos[1] * (h - side))
    crop = img[None, :, top : top + side, left : left + side]
    return F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]


def augment_matrix(angle_deg, scale, flip, translate=(0.0, 0.0)):
    a = math.radians(angle_deg)
    rotate = torch.tensor(
        [[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]],
        dtype=torch.float64,
    )
    flip_x = torch.diag(torch.tensor([-1.0 if flip else 1.0, 1.0, 1.0], dtype=torch.float64))
    zoom = torch.diag(torch.tensor([1.0 / scale, 1.0 / scale, 1.0], dtype=torch.float64))
    shift = torch.eye(3, dtype=torch.float64)
    shift[0, 2] = translate[0]
    shift[1, 2] = translate[1]
    return (shift @ zoom @ flip_x @ rotate)[:2].to(torch.float32)


def presize_batch(batch, thetas, size):
    n, c = batch.shape[:2]
    grid = F.affine_grid(thetas.to(batch.dtype), [n, c, size, size], align_corners=False)
    return F.grid_sample(batch, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


# ---- losses ----


def softmax(acts, dim=-1):
    e = torch.exp(acts - acts.amax(dim=dim, keepdim=True))
    return e / e.sum(dim=dim, keepdim=True)


def binary_softmax(acts):
    return torch.sigmoid(acts[:, 0] - acts[:, 1])


def log_softmax(acts, dim=-1):
    shifted = acts - acts.amax(dim=dim, keepdim=True)
    return shifted - shifted.exp().sum(dim=dim, keepdim=True).log()


def nll_loss(log_probs, targets, reduction="mean"):
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', not {reduction!r}")
    losses = -log_probs[torch.arange(len(targets)), targets]
    if reduction == "none":
        return losses
    return losses.mean() if reduction == "mean" else losses.sum()


def cross_entropy(acts, targets, reduction="mean"):
    return nll_loss(log_softmax(acts, dim=1), targets, reduction)


# ---- interpretation ----


def confusion_matrix(preds, targets, n_classes):
    cm = torch.zeros(n_classes, n_classes, dtype=torch.int64)
    for actual, predicted in zip(targets.tolist(), preds.tolist()):
        cm[actual, predicted] += 1
    return cm


def most_confused(cm, vocab, min_val=1):
    off = cm.clone()
    off.fill_diagonal_(0)
    pairs = [(vocab[i], vocab[j], int(off[i, j])) for i, j in (off >= min_val).nonzero().tolist()]
    return sorted(pairs, key=lambda p: p[2], reverse=True)


# ---- learning_rates ----


def lr_suggestions(lrs, losses):
    slopes = (losses[1:] - losses[:-1]) / (torch.log10(lrs[1:]) - torch.log10(lrs[:-1]))
    return lrs[losses.argmin()].item() / 10, lrs[slopes.argmin()].item()


def lrs_for_groups(lr, n_groups):
    if not isinstance(lr, slice):
        return [lr] * n_groups
    if lr.start is None:
        return [lr.stop / 10] * (n_groups - 1) + [lr.stop]
    if n_groups == 1:
        return [lr.stop]
    step = (lr.stop / lr.start) ** (1 / (n_groups - 1))
    return [lr.start * step**i for i in range(n_groups)]
