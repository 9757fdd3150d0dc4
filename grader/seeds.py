"""Seeds: each case gets its own generator, derived from (seed, exercise id, case id).

Adding or reordering cases never changes the inputs of the others. The public seed ships with
the kit; an instructor's hidden seed (course config or ``IMGCLASS_HIDDEN_SEED``) makes further
cases that students never saw, and never reaches a worker process.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

PUBLIC_SEED = 20260505


def case_seed(seed: int, exercise_id: str, case_id: str) -> int:
    """A 63-bit seed for one case, stable across Python versions and platforms."""
    digest = hashlib.sha256(f"{seed}/{exercise_id}/{case_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


def generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed``."""
    import torch  # here, not above: the settings (and the `grade` command) import this module

    g = torch.Generator()
    g.manual_seed(seed)
    return g
