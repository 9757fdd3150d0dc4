"""Mistake: tests the first letter of the full path, not of the base name."""


def is_cat(fname):
    return str(fname)[0].isupper()
