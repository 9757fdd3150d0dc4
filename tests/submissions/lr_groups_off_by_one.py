"""Mistake: exponents i / n instead of i / (n - 1), so the last group never gets hi."""


def lrs_for_groups(lr, n_groups):
    if not isinstance(lr, slice):
        return [float(lr)] * n_groups
    if lr.start is None:
        return [lr.stop / 10] * (n_groups - 1) + [lr.stop]
    return [lr.start * (lr.stop / lr.start) ** (i / n_groups) for i in range(n_groups)]
