"""Mistake: the rule is upside down: lower case (dogs) gives True."""

import os


def is_cat(fname):
    name = os.path.basename(os.fspath(fname))
    return name[0].islower()
