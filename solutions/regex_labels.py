"""Reference solutions: labels from Oxford-IIIT Pet file names.

Grade one function with ``grade --only regex_labels.breed_from_filename``.
"""

import os
import re

# fullmatch: the whole base name must be "<label>_<digits>.jpg". (With re.match and "$", a name
# ending in "\n" would also be accepted, because "$" matches just before a final newline.)
_PET_NAME = re.compile(r"(.+)_(\d+)\.jpg")


def breed_from_filename(fname: str | os.PathLike) -> str:
    """The breed label in a file name such as "images/great_pyrenees_173.jpg" -> "great_pyrenees"."""
    name = os.path.basename(os.fspath(fname))
    match = _PET_NAME.fullmatch(name)
    if match is None:
        raise ValueError(f"{fname!r} is not a pet image name of the form '<breed>_<number>.jpg'")
    return match.group(1)


def is_cat(fname: str | os.PathLike) -> bool:
    """True when the base name starts with an upper-case letter (cat breeds in Oxford-IIIT Pet)."""
    name = os.path.basename(os.fspath(fname))
    return name[:1].isupper()
