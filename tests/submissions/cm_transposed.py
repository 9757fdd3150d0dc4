"""Mistake: rows are the predicted class and columns the actual class (the matrix is transposed)."""

import torch


def confusion_matrix(preds, targets, n_classes):
    cm = torch.zeros(n_classes, n_classes, dtype=torch.int64)
    for p, t in zip(preds.tolist(), targets.tolist()):
        cm[p, t] += 1
    return cm
