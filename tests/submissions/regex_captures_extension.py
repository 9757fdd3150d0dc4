"""Mistake: the capture group takes the whole base name, ".jpg" included."""

import os
import re


def breed_from_filename(fname):
    name = os.path.basename(os.fspath(fname))
    m = re.match(r"^(.+_\d+\.jpg)$", name)
    if m is None:
        raise ValueError(f"bad file name: {name!r}")
    return m.group(1)
