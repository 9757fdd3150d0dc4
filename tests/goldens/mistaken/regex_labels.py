"""A student's regex_labels: the dot before "jpg" is not escaped."""

import os
import re


def breed_from_filename(fname):
    name = os.path.basename(os.fspath(fname))
    m = re.match(r"(.+)_\d+.jpg$", name)
    if m is None:
        raise ValueError(f"bad file name: {name!r}")
    return m.group(1)


def is_cat(fname):
    name = os.path.basename(os.fspath(fname))
    return name[0].isupper()
