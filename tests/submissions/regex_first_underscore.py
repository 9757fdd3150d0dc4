"""Mistake: splits at the first underscore, so "great_pyrenees_173.jpg" gives "great"."""

import os
import re


def breed_from_filename(fname):
    name = os.path.basename(os.fspath(fname))
    if not re.match(r"^(.+)_(\d+)\.jpg$", name):
        raise ValueError(f"bad file name: {name!r}")
    return name.split("_")[0]
