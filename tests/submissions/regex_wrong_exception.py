"""Mistake: calls .group(1) on a failed match, so a bad name raises AttributeError, not ValueError."""

import os
import re


def breed_from_filename(fname):
    name = os.path.basename(os.fspath(fname))
    return re.match(r"^(.+)_(\d+)\.jpg$", name).group(1)
