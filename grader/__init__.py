"""imgclass-kit's grader: runs a student's functions in a sandboxed worker and explains every mistake."""

from grader.version import __version__

__all__ = ["__version__"]
