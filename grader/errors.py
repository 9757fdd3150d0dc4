"""One exception root for errors the person at the keyboard must fix, and the CLI's exit codes."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the ``grade`` command."""

    OK = 0  #: every graded exercise passed
    FAILED = 1  #: some exercise did not pass
    INPUT_ERROR = 2  #: usage or input error (missing file, syntax error, bad notebook, ...)
    INTERNAL = 3  #: the grader itself failed (a bug: please report it)


class GraderError(Exception):
    """An error with a one-line message meant for the user; never shown with a traceback."""

    exit_code: ExitCode = ExitCode.INPUT_ERROR


class SubmissionError(GraderError):
    """The submission cannot be read (missing, not a notebook, unreadable, ...)."""


class UsageError(GraderError):
    """The command line or configuration asks for something that does not exist."""
