"""Labels from file names (fastbook chapter 5, "From Dogs and Cats to Pet Breeds").

The Oxford-IIIT Pet images carry their label in the file name: `great_pyrenees_173.jpg` is a
Great Pyrenees, `Abyssinian_100.jpg` an Abyssinian cat. Here you pull the label out with a regular
expression and tell cats from dogs.

Replace each `raise NotImplementedError` with your code, then grade one function with
`grade --only regex_labels.breed_from_filename` (or `grade` for all of them).
"""

import os
import re


def breed_from_filename(fname: str | os.PathLike) -> str:
    """Return the breed label in a pet image file name.

    fname: a `str` or an `os.PathLike` (for example a `pathlib.Path`). It may hold folders:
    use only its BASE NAME, `os.path.basename(os.fspath(fname))`.

    The base name must be exactly `<label>_<digits>.jpg`: the regular expression
    `^(.+)_(\\d+)\\.jpg$`, case-sensitive. Return group 1, the label (a `str`):

        breed_from_filename("images/great_pyrenees_173.jpg")      -> "great_pyrenees"
        breed_from_filename(Path("pets/Abyssinian_100.jpg"))      -> "Abyssinian"
        breed_from_filename("american_pit_bull_terrier_12.jpg")   -> "american_pit_bull_terrier"

    `(.+)` is greedy, so it takes everything up to the LAST underscore that is followed only by
    digits and `.jpg`. Breed names hold underscores themselves, so splitting at the first `_`
    ("great") is wrong.

    Anything else raises `ValueError`, with a message that names the file:

        "Abyssinian_100.mat"   (not .jpg: the real images/ folder holds three .mat files)
        "great_pyrenees.jpg"   (no number)
        ""                     (empty)
        "_12.jpg"              (empty label)
        "shiba_inu_12Xjpg"     (no dot before jpg)
        "pug_12a.jpg"          (not only digits)

    The book labels with `using_attr(RegexLabeller(r'(.+)_\\d+.jpg$'), 'name')`: `using_attr(...,
    'name')` hands the regex `Path.name`, the base name. This kit does the same and is a little
    stricter: the book's unescaped `.` matches ANY character, so it accepts "shiba_inu_12Xjpg"; the
    kit escapes it (`\\.`). Run on a full path, the regex would also swallow the folders
    ("images/great_pyrenees"). fastai raises `AssertionError` on a bad name; the kit wants
    `ValueError`. Tip: `re.fullmatch` (or `re.match` with `^...$`) and check for `None` before
    calling `.group(1)`.
    """
    raise NotImplementedError


def is_cat(fname: str | os.PathLike) -> bool:
    """Return True if the file name is a cat's, False if it is a dog's.

    Oxford-IIIT Pet convention: the 12 cat breeds start with an upper-case letter (Abyssinian,
    Bengal, Birman, Bombay, British_Shorthair, Egyptian_Mau, Maine_Coon, Persian, Ragdoll,
    Russian_Blue, Siamese, Sphynx); the 25 dog breeds are all lower case (pug, beagle, ...).

    Test the first letter of the BASE NAME, not of the whole path:

        is_cat("Abyssinian_100.jpg")         -> True
        is_cat("images/great_pyrenees_173.jpg") -> False
        is_cat("Images/pug_1.jpg")           -> False   (the folder's "I" does not count)
        is_cat(Path("pets/Bengal_3.jpg"))    -> True

    Return a real `bool` (`True`/`False`), not a match object or a string. The book's first
    model (chapter 1) used this rule, `def is_cat(x): return x[0].isupper()`, on the file's name.
    """
    raise NotImplementedError
