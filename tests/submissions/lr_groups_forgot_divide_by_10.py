"""Mistake: slice(None, hi) gives hi to every group instead of hi / 10 to all but the last."""


def lrs_for_groups(lr, n_groups):
    if not isinstance(lr, slice):
        return [float(lr)] * n_groups
    if lr.start is None:
        return [lr.stop] * n_groups
    if n_groups == 1:
        return [lr.stop]
    return [lr.start * (lr.stop / lr.start) ** (i / (n_groups - 1)) for i in range(n_groups)]
