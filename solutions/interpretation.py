"""Reference solutions: the confusion matrix and its most confused pairs.

Grade one function with ``grade --only interpretation.confusion_matrix``.
"""

import torch


def confusion_matrix(preds: torch.Tensor, targets: torch.Tensor, n_classes: int) -> torch.Tensor:
    """cm[i, j] = number of items of actual class i predicted as class j."""
    # Each (actual, predicted) pair gets its own cell number in a flattened C*C grid; count them.
    cells = targets.long() * n_classes + preds.long()
    counts = torch.bincount(cells, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)


def most_confused(cm: torch.Tensor, vocab: list[str], min_val: int = 1) -> list[tuple[str, str, int]]:
    """Off-diagonal (actual, predicted, count) with count >= min_val, largest count first."""
    pairs = []
    for i, row in enumerate(cm.tolist()):  # row by row: ties keep this order
        for j, count in enumerate(row):
            if i != j and count >= min_val:
                pairs.append((vocab[i], vocab[j], int(count)))
    # sorted() is stable, so equal counts stay in row-major order.
    return sorted(pairs, key=lambda pair: pair[2], reverse=True)
