"""Bad input to the grader itself: fuzz the submission readers (and batch discovery) with Hypothesis.

Whatever the bytes, the notebook JSON, the nbformat version, the encoding, the size, the symlinks
or the file names, reading a submission either gives a Submission whose every text can be hashed
and sent to a worker, or raises one SubmissionError with a one-line message that names the file.
Nothing is executed while reading (a file named ``$(touch ...)`` stays a name), and reading a bad
submission changes nothing for the next one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import ROOT, ZOO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grader import wire
from grader.errors import SubmissionError
from grader.submission import MAX_FILE_BYTES, Submission, read_submission

MODULES = ("regex_labels", "presizing", "losses", "interpretation", "learning_rates")
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PWNED = "/tmp/imgclass-fuzz-pwned"
PWNED_HERE = "imgclass-fuzz-pwned"  # what a shell would create in its working directory


def _read(path: Path) -> Submission | SubmissionError:
    """read_submission's answer: a Submission, or the SubmissionError it raised (nothing else)."""
    try:
        sub = read_submission(path, MODULES)
    except SubmissionError as e:
        message = str(e)
        assert message and "\n" not in message and "Traceback" not in message, message
        return e
    _usable(sub)
    return sub


def _usable(sub: Submission) -> None:
    """Everything the grader does next with a Submission works: hash it, encode it for a worker."""
    assert isinstance(sub.digest(), str)
    for source in sub.all_sources():
        units = [{"name": u.name, "text": u.text} for u in source.units]
        frame = wire.pack_frame({"op": "load", "key": source.key, "units": units})
        header, _ = next(wire.FrameDecoder().feed(frame))
        assert header["units"] == units


def _fresh(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    return folder / name


# ----------------------------------------------------------------------------- .py files


@FUZZ
@given(data=st.binary(max_size=4000))
def test_any_bytes_as_a_py_file(tmp_path: Path, data: bytes) -> None:
    path = _fresh(tmp_path, "answers.py")
    path.write_bytes(data)
    result = _read(path)
    if isinstance(result, SubmissionError):
        assert "answers.py" in str(result)


@FUZZ
@given(
    text=st.text(max_size=3000),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"]),
)
def test_any_text_in_any_encoding(tmp_path: Path, text: str, encoding: str) -> None:
    path = _fresh(tmp_path, "answers.py")
    try:
        path.write_bytes(text.encode(encoding))
    except UnicodeEncodeError:
        return
    result = _read(path)
    if isinstance(result, Submission) and encoding.startswith("utf-8"):
        assert result.single is not None and result.single.units[0].text == text.replace("\r\n", "\r\n")


@FUZZ
@given(
    body=st.lists(
        st.sampled_from(
            [
                "def softmax(acts, dim=-1):\n    return acts\n",
                "def softmax(acts, dim=-1:\n",
                "x = '\\x00'\n",
                "\t if True:\n  pass\n",
                "import torch\n",
                "class A(\n",
                "'''unterminated\n",
                "# -*- coding: latin-1 -*-\n",
                "λ = 1\n",
                "print('$(touch /tmp/imgclass-fuzz-pwned)')\n",
            ]
        ),
        max_size=8,
    )
)
def test_python_source_fragments(tmp_path: Path, body: list[str]) -> None:
    path = _fresh(tmp_path, "answers.py")
    path.write_text("".join(body), encoding="utf-8")
    result = _read(path)
    assert isinstance(result, Submission)  # syntax errors are reported per source, never raised
    assert not os.path.exists(PWNED)


# ----------------------------------------------------------------------------- notebooks

_json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=40)
)
_json = st.recursive(
    _json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
_source = st.one_of(
    st.text(max_size=200),
    st.lists(st.text(max_size=60), max_size=6),
    _json,
    st.sampled_from(
        [
            "!rm -rf ~\n",
            "%%bash\nrm -rf ~\n",
            "%matplotlib inline\nimport torch\n",
            "files = !ls\n",
            "def softmax(acts, dim=-1):\n    return acts\n",
            "get_ipython().system('touch /tmp/imgclass-fuzz-pwned')\n",
            "x = '\u0000'\n",
            "def f(:\n",
            "\ud800 = 1\n",
        ]
    ),
)
_cell = st.fixed_dictionaries(
    {"cell_type": st.sampled_from(["code", "markdown", "raw", "heading", "", 3])},
    optional={
        "source": _source,
        "metadata": _json,
        "outputs": _json,
        "execution_count": st.one_of(st.none(), st.integers()),
        "id": st.text(max_size=12),
    },
)
_notebook = st.fixed_dictionaries(
    {},
    optional={
        "nbformat": st.one_of(st.integers(-1, 6), st.text(max_size=3), st.none()),
        "nbformat_minor": st.one_of(st.integers(-1, 10), st.none()),
        "metadata": _json,
        "cells": st.one_of(st.lists(_cell, max_size=6), _json),
        "worksheets": st.lists(st.fixed_dictionaries({"cells": st.lists(_cell, max_size=3)}), max_size=2),
    },
)


@FUZZ
@given(nb=_notebook)
def test_any_notebook_structure(tmp_path: Path, nb: dict[str, object]) -> None:
    path = _fresh(tmp_path, "work.ipynb")
    path.write_text(json.dumps(nb), encoding="utf-8")
    result = _read(path)
    if isinstance(result, SubmissionError):
        assert "work.ipynb" in str(result)
    assert not os.path.exists(PWNED)


@pytest.mark.parametrize("source", ["x = '\u0000'\n", "\ud800 = 1\n", "def f():\n    return '\udcff'\n"])
def test_notebook_cells_that_are_not_valid_text(tmp_path: Path, source: str) -> None:
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": source}
    ]}  # fmt: skip
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    result = _read(path)
    if isinstance(result, Submission):
        assert result.syntax_errors, "a cell that cannot be compiled is reported as a syntax error"


@FUZZ
@given(data=st.binary(max_size=2000))
def test_any_bytes_as_a_notebook(tmp_path: Path, data: bytes) -> None:
    path = _fresh(tmp_path, "work.ipynb")
    path.write_bytes(data)
    _read(path)


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5, 99])
def test_every_nbformat_version(tmp_path: Path, version: int) -> None:
    nb = json.loads((ZOO / "notebook_all.ipynb").read_text())
    nb["nbformat"] = version
    if version == 3:
        nb = {"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [{"cells": [
            {"cell_type": "code", "input": "def softmax(acts, dim=-1):\n    return acts\n", "outputs": []}
        ]}]}  # fmt: skip
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    result = _read(path)
    if version in (3, 4):
        assert isinstance(result, Submission) and result.single is not None and result.single.units
    if version in (1, 2, 5, 99):
        assert isinstance(result, (Submission, SubmissionError))


# ----------------------------------------------------------------------------- sizes, files, links


def test_huge_files_are_refused_without_being_read(tmp_path: Path) -> None:
    for name in ("answers.py", "work.ipynb"):
        path = tmp_path / name
        with open(path, "wb") as f:
            f.truncate(MAX_FILE_BYTES * 50)  # sparse: 100 MB that cost nothing to make
        result = _read(path)
        assert isinstance(result, SubmissionError) and "too large" in str(result)


def test_binary_and_special_files(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "answers.py").write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)))
    assert "not a text file" in str(_read(tmp_path / "a" / "answers.py"))
    os.mkfifo(tmp_path / "fifo.py")  # reading would block forever: it must be refused, not opened
    assert isinstance(_read(tmp_path / "fifo.py"), SubmissionError)
    assert isinstance(_read(Path("/dev/zero")), SubmissionError)


@pytest.mark.parametrize(
    "target",
    [ROOT / "solutions" / "losses.py", Path("/etc/passwd"), Path("/proc/self/environ"), Path("../../x.py")],
)
def test_symlinks_pointing_outside_the_submission(tmp_path: Path, target: Path) -> None:
    why = "points outside the submission" if (tmp_path / target).exists() else ""
    folder = tmp_path / "student"
    (folder / "exercises").mkdir(parents=True)
    (folder / "exercises" / "losses.py").symlink_to(target)
    result = _read(folder)
    assert isinstance(result, SubmissionError) and why in str(result)
    single = tmp_path / "flat"
    single.mkdir()
    (single / "answers.py").symlink_to(target)
    for path in (single, single / "answers.py"):  # a folder holding the link, or the link itself
        result = _read(path)
        assert isinstance(result, SubmissionError) and why in str(result)


def test_a_linked_folder_is_checked_against_the_submission(tmp_path: Path) -> None:
    """student/exercises -> the reference solutions, or the student folder itself -> solutions."""
    student = tmp_path / "student"
    student.mkdir()
    (student / "exercises").symlink_to(ROOT / "solutions")
    result = _read(student)
    assert isinstance(result, SubmissionError) and "points outside the submission" in str(result)
    (tmp_path / "mallory").symlink_to(ROOT / "solutions")
    result = _read(tmp_path / "mallory")
    assert isinstance(result, SubmissionError) and "points outside the submission" in str(result)


def test_a_symlink_inside_the_submission_is_fine(tmp_path: Path) -> None:
    folder = tmp_path / "student" / "exercises"
    folder.mkdir(parents=True)
    (folder / "real.py").write_text((ROOT / "solutions" / "losses.py").read_text())
    (folder / "losses.py").symlink_to(folder / "real.py")
    assert isinstance(_read(folder.parent), Submission)


NAMES = [
    "my answers.py",
    'it\'s "mine".py',
    "$(touch imgclass-fuzz-pwned).py",
    "`touch imgclass-fuzz-pwned`.py",
    "; rm -rf ~ #.py",
    "ünïcødé 学生.py",
    "-rf.py",
    "\u202eyp.exe.py",
    "a\tb.py",
    "new\nline.py",
]


@pytest.mark.parametrize("name", NAMES)
def test_strange_file_names(tmp_path: Path, name: str) -> None:
    text = (ZOO / "all_correct.py").read_text()
    path = tmp_path / name
    path.write_text(text)
    result = _read(path)
    assert isinstance(result, Submission) and result.name == name
    folder = tmp_path / f"folder {name.replace('/', '_')}"
    folder.mkdir()
    (folder / name).write_text(text)
    assert isinstance(_read(folder), Submission)
    assert not os.path.exists(PWNED) and not os.path.exists(PWNED_HERE)
    assert not (tmp_path / PWNED_HERE).exists() and not (folder / PWNED_HERE).exists()


@FUZZ
@given(
    name=st.text(
        st.characters(blacklist_categories=["Cs"], blacklist_characters="/\0"), min_size=1, max_size=40
    )
)
def test_any_file_name(tmp_path: Path, name: str) -> None:
    folder = tmp_path / f"n{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    path = folder / (name + ".py")
    try:
        path.write_text("def softmax(acts, dim=-1):\n    return acts\n")
    except OSError:  # too long for the file system
        return
    result = _read(path)
    assert isinstance(result, Submission) and result.name == path.name


def test_a_file_name_that_is_not_utf8(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9 \xff.py"
    with open(raw, "w") as f:
        f.write("def softmax(acts, dim=-1):\n    return acts\n")
    result = _read(Path(os.fsdecode(raw)))
    assert isinstance(result, Submission)


def test_a_bad_submission_changes_nothing_for_the_next(tmp_path: Path) -> None:
    good = read_submission(ZOO / "all_correct.py", MODULES)
    for data in (b"\0\1\2", b"\xff\xfe", b"{", b"x" * (MAX_FILE_BYTES + 1)):
        path = _fresh(tmp_path, "bad.py")
        path.write_bytes(data)
        _read(path)
    assert read_submission(ZOO / "all_correct.py", MODULES).digest() == good.digest()


# ----------------------------------------------------------------------------- batch discovery


@FUZZ
@given(
    names=st.lists(
        st.text(
            st.characters(blacklist_categories=["Cs"], blacklist_characters="/\0"), min_size=1, max_size=24
        ),
        max_size=6,
        unique=True,
    ),
    kinds=st.lists(
        st.sampled_from(["py", "ipynb", "txt", "dir", "empty-dir", "link-out", "link-in"]), max_size=6
    ),
)
def test_batch_discovery_never_fails_on_odd_entries(
    tmp_path: Path, names: list[str], kinds: list[str]
) -> None:
    from grader.batch.discover import Candidate, Unusable, discover

    root = tmp_path / f"class{len(list(tmp_path.iterdir()))}"
    root.mkdir()
    for name, kind in zip(names, kinds):
        try:
            if kind in ("py", "ipynb", "txt"):
                (root / f"{name}.{kind}").write_text("def softmax(acts, dim=-1):\n    return acts\n")
            elif kind == "dir":
                (root / name).mkdir()
                (root / name / "answers.py").write_text("def softmax(acts, dim=-1):\n    return acts\n")
            elif kind == "empty-dir":
                (root / name).mkdir()
            elif kind == "link-out":
                (root / f"{name}.py").symlink_to(ROOT / "solutions" / "losses.py")
            else:
                (root / f"{name}.py").symlink_to(root)
        except OSError:
            continue
    found = list(discover(root))
    for item in found:
        assert isinstance(item, (Candidate, Unusable))
        if isinstance(item, Candidate):
            result = _read(item.path)
            if os.path.islink(item.path) and os.path.realpath(item.path).startswith(str(ROOT)):
                # a link out of the class folder (to the reference solutions) is never graded
                assert isinstance(result, SubmissionError), item.path
