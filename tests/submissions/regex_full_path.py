"""Mistake: runs the regex on the full path, so the folders end up in the label."""

import re


def breed_from_filename(fname):
    m = re.search(r"(.+)_(\d+)\.jpg$", str(fname))
    if m is None:
        raise ValueError(f"bad file name: {fname!r}")
    return m.group(1)
