"""Spec of ``exercises/regex_labels.py``: labels and species from Oxford-IIIT Pet file names."""

from __future__ import annotations

import os
import re
from functools import cache
from importlib import resources
from typing import Any

from grader.explain import check_exact, check_raises
from grader.model import Misconception
from grader.outcome import Outcome, Raised, Returned
from grader.spec import Call, CaseSpec, Diagnosis, Exercise, Tolerance, call, expr

PATTERN = re.compile(r"(.+)_(\d+)\.jpg")
EXACT = Tolerance(rtol=0.0, atol=0.0)


@cache
def pet_filenames() -> tuple[str, ...]:
    """The 7,390 image names of the Oxford-IIIT Pet data set."""
    text = resources.files("grader.data").joinpath("oxford_pets_filenames.txt").read_text()
    return tuple(line for line in text.splitlines() if line)


@cache
def breeds() -> dict[str, str]:
    """breed -> species ("cat" or "dog") for the 37 breeds."""
    text = resources.files("grader.data").joinpath("oxford_pets_breeds.tsv").read_text()
    rows = [line.split("\t") for line in text.splitlines()[1:] if line]
    return {r[0]: r[1] for r in rows}


def ref_breed(fname: str | os.PathLike[str]) -> str:
    """The reference labeller: ``<label>_<digits>.jpg`` on the base name only."""
    base = os.path.basename(os.fspath(fname))
    m = PATTERN.fullmatch(base)
    if m is None:
        raise ValueError(f"not a <label>_<digits>.jpg name: {base!r}")
    return m.group(1)


def ref_is_cat(fname: str | os.PathLike[str]) -> bool:
    return os.path.basename(os.fspath(fname))[:1].isupper()


# ----------------------------------------------------------------------------- cases

DIRS = ("images", "oxford-iiit-pet/images", "data/pets_2024", "/home/student/pets/images", "Pets/train")


def real_name(seed: int, path: bool = False, dirs: tuple[str, ...] = DIRS) -> Any:
    names = pet_filenames()
    name = names[seed % len(names)]
    if not path:
        return name
    d = dirs[(seed // len(names)) % len(dirs)]
    return f"{d}/{name}"


def name_case(id: str, label: str, fname: str, *, path_obj: bool = False, random: bool = False) -> CaseSpec:
    arg = expr(f"pathlib.Path({fname!r})") if path_obj else fname
    return CaseSpec(id, label, lambda s: call(arg), random=random)


def random_name_case(id: str, label: str, *, path: bool, path_obj: bool = False) -> CaseSpec:
    def build(s: int) -> Call:
        fname = real_name(s, path=path)
        return call(expr(f"pathlib.Path({fname!r})") if path_obj else fname)

    return CaseSpec(id, label, build)


BREED_CASES = (
    name_case("simple", "a one-word breed", "pug_52.jpg"),
    name_case("cat", "a cat breed (capitalised)", "Abyssinian_100.jpg"),
    name_case("two-words", "a two-word breed", "great_pyrenees_173.jpg"),
    name_case("book-example", "the book's first file, with its folder", "images/great_pyrenees_173.jpg"),
    name_case("many-underscores", "a breed with three underscores", "american_pit_bull_terrier_191.jpg"),
    name_case(
        "path-object", "a pathlib.Path", "oxford-iiit-pet/images/British_Shorthair_203.jpg", path_obj=True
    ),
    name_case(
        "dir-underscores", "folders with underscores and digits", "data_2024/pets_v2/Egyptian_Mau_41.jpg"
    ),
    random_name_case("real-1", "a real file name", path=False),
    random_name_case("real-2", "a real file name in a folder", path=True),
    random_name_case("real-3", "a real file name as a Path", path=True, path_obj=True),
    random_name_case("real-4", "a real file name in a folder", path=True),
    name_case(
        "mat-file", "not an image: Abyssinian_100.mat (must raise ValueError)", "images/Abyssinian_100.mat"
    ),
    name_case("no-digits", "no number: great_pyrenees.jpg (must raise ValueError)", "great_pyrenees.jpg"),
    name_case("empty", "an empty name (must raise ValueError)", ""),
    name_case("empty-label", "no label: _12.jpg (must raise ValueError)", "_12.jpg"),
    name_case(
        "unescaped-dot", "shiba_inu_12Xjpg: no dot before jpg (must raise ValueError)", "shiba_inu_12Xjpg"
    ),
    name_case("letters-after-digits", "pug_12a.jpg (must raise ValueError)", "pug_12a.jpg"),
)


def _variant(fn: Any) -> Any:
    """A wrong labeller that still raises ValueError on names the reference rejects."""

    def variant(fname: Any) -> Any:
        ref_breed(fname)  # raises ValueError where the reference does
        return fn(fname)

    return variant


def captured_extension(got: Outcome, exp: Outcome, c: Call) -> bool:
    return (
        isinstance(got, Returned)
        and isinstance(exp, Returned)
        and isinstance(got.value, str)
        and ".jpg" in got.value
        and ".jpg" not in exp.value
    )


def wrong_exception(got: Outcome, exp: Outcome, c: Call) -> bool:
    if not isinstance(exp, Raised):
        return False
    if isinstance(got, Raised):
        return not got.is_a(exp.type)
    return isinstance(got, Returned) and got.value in (None, "", False)


BREED = Exercise(
    id="regex_labels.breed_from_filename",
    module="regex_labels",
    func="breed_from_filename",
    title="breed_from_filename(fname)",
    points=3,
    reference=ref_breed,
    cases=BREED_CASES,
    checks=(check_raises, check_exact(str)),
    diagnoses=(
        Diagnosis(
            Misconception(
                "regex-captures-digits",
                "the number is part of the label",
                "Your group also captured the image number, so every photo of a breed gets its own label.",
                "Put only the part before the last _<digits> inside the parentheses.",
            ),
            variant=_variant(lambda f: os.path.basename(os.fspath(f)).removesuffix(".jpg")),
        ),
        Diagnosis(
            Misconception(
                "regex-captures-extension",
                "the extension is part of the label",
                "The label still contains '.jpg'.",
                "Match the extension outside the capturing group: (.+)_\\d+\\.jpg",
            ),
            detect=captured_extension,
        ),
        Diagnosis(
            Misconception(
                "regex-first-underscore",
                "split at the first underscore",
                "Breed names can contain underscores (great_pyrenees, american_pit_bull_terrier): "
                "the label is everything before the LAST _<digits>.",
                "A greedy (.+) followed by _\\d+\\.jpg$ backs off to the last underscore.",
            ),
            variant=_variant(lambda f: os.path.basename(os.fspath(f)).split("_")[0]),
        ),
        Diagnosis(
            Misconception(
                "regex-full-path",
                "the folder is part of the label",
                "The pattern ran on the whole path, so '(.+)' also swallowed the folders (the book applies the "
                "regex to the file's .name).",
                "Take the base name first: os.path.basename(os.fspath(fname)) or Path(fname).name.",
            ),
            variant=_variant(lambda f: re.search(r"(.+)_\d+\.jpg$", os.fspath(f)).group(1)),  # type: ignore[union-attr]
        ),
        Diagnosis(
            Misconception(
                "regex-unescaped-dot",
                "unescaped dot in the pattern",
                "In a regex '.' matches any character, so 'shiba_inu_12Xjpg' was accepted as a .jpg file.",
                "Escape it: \\.jpg matches only a literal dot.",
            ),
            variant=lambda f: (
                ref_breed(f)
                if PATTERN.fullmatch(os.path.basename(os.fspath(f)))
                else re.fullmatch(r"(.+)_(\d+).jpg", os.path.basename(os.fspath(f))).group(1)  # type: ignore[union-attr]
                if re.fullmatch(r"(.+)_(\d+).jpg", os.path.basename(os.fspath(f)))
                else ref_breed(f)
            ),
        ),
        Diagnosis(
            Misconception(
                "regex-wrong-exception",
                "no ValueError for a name that is not <label>_<digits>.jpg",
                "When the pattern does not match, re.match returns None; calling .group on it raises "
                "AttributeError (and findall(...)[0] an IndexError).",
                "Check the match: if m is None: raise ValueError(f'...{fname}...')",
            ),
            detect=wrong_exception,
        ),
    ),
    hints=(
        "The label is everything before the last _<digits>.jpg of the FILE name (not the folders).",
        "os.path.basename(os.fspath(fname)) gives the file name; re.fullmatch(r'(.+)_(\\d+)\\.jpg', name) "
        "captures the label greedily.",
        "m = re.fullmatch(r'(.+)_\\d+\\.jpg', os.path.basename(os.fspath(fname))); "
        "if m is None: raise ValueError(...); return m.group(1)",
    ),
    tolerance=lambda c, e: EXACT,
)

IS_CAT = Exercise(
    id="regex_labels.is_cat",
    module="regex_labels",
    func="is_cat",
    title="is_cat(fname)",
    points=1,
    reference=ref_is_cat,
    cases=(
        name_case("cat", "a cat", "Abyssinian_1.jpg"),
        name_case("dog", "a dog", "pug_52.jpg"),
        name_case("two-capitals", "British_Shorthair", "British_Shorthair_203.jpg"),
        name_case("cat-lower-folder", "a cat in a lower-case folder", "images/Bengal_3.jpg"),
        name_case("dog-upper-folder", "a dog in a capitalised folder", "Images/pug_1.jpg"),
        name_case("path-object", "a pathlib.Path", "Pets/train/Sphynx_158.jpg", path_obj=True),
        random_name_case("real-1", "a real file name", path=False),
        random_name_case("real-2", "a real file name in a folder", path=True),
        random_name_case("real-3", "a real file name as a Path", path=True, path_obj=True),
    ),
    checks=(check_exact(bool),),
    diagnoses=(
        Diagnosis(
            Misconception(
                "is-cat-full-path",
                "tested the first letter of the whole path",
                "The first character of 'Images/pug_1.jpg' is the folder's, not the breed's.",
                "Test the base name: os.path.basename(os.fspath(fname))[0].isupper().",
            ),
            variant=lambda f: os.fspath(f)[:1].isupper(),
        ),
        Diagnosis(
            Misconception(
                "is-cat-inverted",
                "cats and dogs swapped",
                "In Oxford-IIIT Pet the CAT breeds are capitalised (Abyssinian, Bengal, ...); dog breeds are lower case.",
                "Return True when the first letter of the file name is upper case.",
            ),
            variant=lambda f: not ref_is_cat(f),
        ),
    ),
    hints=(
        "In Oxford-IIIT Pet, cat breeds start with an upper-case letter, dog breeds with a lower-case one.",
        "Look at the first character of the file's base name, not of the whole path.",
        "return os.path.basename(os.fspath(fname))[:1].isupper()",
    ),
    tolerance=BREED.tolerance,
)

EXERCISES = (BREED, IS_CAT)
