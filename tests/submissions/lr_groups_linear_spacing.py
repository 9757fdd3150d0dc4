"""Mistake: slice(lo, hi) spread evenly (linspace) instead of multiplicatively."""


def lrs_for_groups(lr, n_groups):
    if not isinstance(lr, slice):
        return [float(lr)] * n_groups
    if lr.start is None:
        return [lr.stop / 10] * (n_groups - 1) + [lr.stop]
    if n_groups == 1:
        return [lr.stop]
    step = (lr.stop - lr.start) / (n_groups - 1)
    return [lr.start + step * i for i in range(n_groups)]
