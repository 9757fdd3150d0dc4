"""What one call of a student's function produced, as the trusted parent sees it after decoding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from grader.model import Frame


@dataclass(frozen=True)
class Unsupported:
    """A value of a type the grader does not accept (only tensors, numbers, str, bool, lists/tuples)."""

    type_name: str

    def __repr__(self) -> str:
        return f"<a {self.type_name}>"


@dataclass(frozen=True)
class Returned:
    """The function returned ``value``; for gradient cases also the gradient of the checked input."""

    value: Any
    grad: Any = None  #: gradient w.r.t. the checked argument (gradient cases only)
    grad_error: str | None = None  #: why no gradient could be computed
    mutated: tuple[int, ...] = ()  #: positions of tensor arguments changed in place


@dataclass(frozen=True)
class Raised:
    """The function raised an exception."""

    type: str
    kinds: tuple[str, ...]  #: the exception class and its bases, by name
    message: str
    frames: tuple[Frame, ...] = ()

    def is_a(self, name: str) -> bool:
        return name in self.kinds

    @property
    def headline(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


@dataclass(frozen=True)
class NotImplementedYet:
    """The function still raises NotImplementedError: the stub was not filled in."""


Outcome = Returned | Raised | NotImplementedYet
