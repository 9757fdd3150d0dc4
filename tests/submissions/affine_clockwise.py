"""Mistake: rotation matrix with fastai's sign, so positive angles turn the picture clockwise."""

import math

import torch


def augment_matrix(angle_deg, scale, flip, translate=(0.0, 0.0)):
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    rotate = torch.tensor([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    flip_x = torch.diag(torch.tensor([-1.0 if flip else 1.0, 1.0, 1.0]))
    zoom = torch.diag(torch.tensor([1 / scale, 1 / scale, 1.0]))
    shift = torch.tensor([[1.0, 0.0, translate[0]], [0.0, 1.0, translate[1]], [0.0, 0.0, 1.0]])
    theta = shift @ zoom @ flip_x @ rotate
    return theta[:2]
