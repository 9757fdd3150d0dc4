"""Simulated training artefacts for the interpretation and learning-rate exercises.

Students rebuild any case with these functions (``import grader.simulate``), for example
``grader.simulate.finder_losses(7)`` or ``grader.simulate.book_confusion()``. Everything is
deterministic: the same arguments give the same tensors on every machine.

- A pet classifier's validation predictions (``targets``/``predictions``), and a 37×37 confusion
  matrix shaped like the book's (``book_confusion``: ``most_confused(min_val=5)`` prints the book's
  five pairs).
- A learning-rate finder run (``finder_lrs``/``finder_losses``): the learning rate grows
  exponentially from 1e-7 to 10 over 100 mini-batches, the recorded loss is a debiased moving
  average (β = 0.98) of a noisy loss that falls, bottoms out and then diverges; the run stops when
  the smoothed loss exceeds 4× the best, and the first 10% and the last 5 points are dropped, as
  fastai's ``lr_find`` does before it suggests learning rates.
"""

from __future__ import annotations

import math
from functools import cache
from importlib import resources

import torch

#: Off-diagonal counts of the book's ``most_confused(min_val=5)`` (actual, predicted, count).
BOOK_MOST_CONFUSED: tuple[tuple[str, str, int], ...] = (
    ("american_pit_bull_terrier", "staffordshire_bull_terrier", 10),
    ("Ragdoll", "Birman", 8),
    ("Siamese", "Birman", 6),
    ("Bengal", "Egyptian_Mau", 5),
    ("american_pit_bull_terrier", "american_bulldog", 5),
)
BOOK_VALID_SIZE = 1478  #: validation images of the book's RandomSplitter(seed=42) on 7,390 files


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- interpretation


@cache
def _pet_vocab() -> tuple[str, ...]:
    text = resources.files("grader.data").joinpath("oxford_pets_breeds.tsv").read_text()
    return tuple(sorted(line.split("\t")[0] for line in text.splitlines()[1:] if line))


def pet_vocab() -> list[str]:
    """The 37 breeds in fastai's vocab order (sorted: the capitalised cat breeds come first)."""
    return list(_pet_vocab())


def targets(seed: int, n: int, n_classes: int) -> torch.Tensor:
    """``n`` actual labels in ``0..n_classes-1`` (int64)."""
    return torch.randint(0, n_classes, (n,), generator=_generator(seed))


def predictions(seed: int, n: int, n_classes: int, accuracy: float = 0.85) -> torch.Tensor:
    """Predictions for ``targets(seed, n, n_classes)``: right with probability ``accuracy``; a wrong
    prediction is the "look-alike" class (label + 1) half of the time, any other class otherwise."""
    t = targets(seed, n, n_classes)
    g = _generator(seed + 1)
    wrong = torch.rand(n, generator=g) >= accuracy
    look_alike = torch.rand(n, generator=g) < 0.5
    shift = torch.randint(1, max(n_classes, 2), (n,), generator=g)
    shift = torch.where(look_alike, torch.ones_like(shift), shift)
    return torch.where(wrong, (t + shift) % n_classes, t)


def confusion(seed: int, n: int, n_classes: int, accuracy: float = 0.85) -> torch.Tensor:
    """The confusion matrix (rows actual, columns predicted) of ``predictions`` vs ``targets``."""
    cells = targets(seed, n, n_classes) * n_classes + predictions(seed, n, n_classes, accuracy)
    return torch.bincount(cells, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


@cache
def _book_confusion() -> torch.Tensor:
    vocab = _pet_vocab()
    index = {b: i for i, b in enumerate(vocab)}
    n = len(vocab)
    cm = torch.zeros(n, n, dtype=torch.int64)
    for actual, predicted, count in BOOK_MOST_CONFUSED:
        cm[index[actual], index[predicted]] = count
    # About 80 further mistakes of 1 to 4 each, on cells the book does not list.
    g = _generator(5)
    for _ in range(40):
        i, j = (int(v) for v in torch.randint(0, n, (2,), generator=g))
        if i != j and cm[i, j] == 0:
            cm[i, j] = int(torch.randint(1, 5, (1,), generator=g))
    # The rest of each breed's validation images were classified correctly.
    per_class = torch.full((n,), BOOK_VALID_SIZE // n, dtype=torch.int64)
    per_class[: BOOK_VALID_SIZE - int(per_class.sum())] += 1
    off = cm.sum(dim=1)
    cm += torch.diag(per_class - off)
    return cm


def book_confusion() -> torch.Tensor:
    """A 37×37 confusion matrix (rows actual, columns predicted) shaped like the book's: 1,478
    validation images, and ``most_confused(min_val=5)`` gives exactly the book's five pairs."""
    return _book_confusion().clone()


@cache
def _book_pairs() -> tuple[torch.Tensor, torch.Tensor]:
    cm = _book_confusion()
    n = cm.shape[0]
    cells = torch.arange(n * n).repeat_interleave(cm.flatten())
    order = torch.randperm(len(cells), generator=_generator(42))
    cells = cells[order]
    return cells % n, cells // n  # predictions, targets


def book_preds() -> torch.Tensor:
    """The 1,478 predictions behind ``book_confusion()`` (in a shuffled order)."""
    return _book_pairs()[0].clone()


def book_targets() -> torch.Tensor:
    """The 1,478 actual labels behind ``book_confusion()`` (same order as ``book_preds()``)."""
    return _book_pairs()[1].clone()


# ----------------------------------------------------------------------------- learning-rate finder

START_LR, END_LR, NUM_IT = 1e-7, 10.0, 100


def _raw_losses(g: torch.Generator, log_lr: torch.Tensor, noise: float, diverge: bool) -> torch.Tensor:
    u = torch.rand(6, generator=g, dtype=torch.float64).tolist()
    start = 2.5 + 1.5 * u[0]  # the loss of an untrained head, ~ln(37)
    drop = start * (0.55 + 0.35 * u[1])  # how far it falls
    centre = -4.5 + 2.5 * u[2]  # log10 of the learning rate where it falls fastest
    width = 0.25 + 0.35 * u[3]
    blow_up = centre + 0.8 + 1.0 * u[4] if diverge else 3.0  # where it starts to diverge
    speed = 0.12 + 0.15 * u[5]
    jitter = torch.randn(log_lr.shape, generator=g, dtype=torch.float64)
    return (
        start
        - drop * torch.sigmoid((log_lr - centre) / width)
        + 0.05 * start * torch.exp((log_lr - blow_up) / speed)
        + noise * start * jitter
    )


def _margin_ok(lrs: torch.Tensor, losses: torch.Tensor) -> bool:
    """The lowest loss and the steepest slope are unique by a clear margin (no near-ties)."""
    if len(losses) < 4:
        return False
    slopes = (losses[1:] - losses[:-1]) / (lrs[1:].log() - lrs[:-1].log())
    for v in (losses, slopes):
        two = torch.topk(v, 2, largest=False).values
        if float(two[1] - two[0]) <= 1e-6 * max(1.0, float(v.abs().max())):
            return False
    return True


@cache
def _finder_run(seed: int, noise: float, diverge: bool) -> tuple[torch.Tensor, torch.Tensor]:
    for attempt in range(100):
        g = _generator(seed + attempt)
        i = torch.arange(NUM_IT, dtype=torch.float64)
        lrs = START_LR * (END_LR / START_LR) ** (i / NUM_IT)
        raw = _raw_losses(g, lrs.log10(), noise, diverge)
        recorded: list[float] = []
        avg, best = 0.0, math.inf
        for k, loss in enumerate(raw.tolist()):
            avg = 0.98 * avg + 0.02 * loss
            smooth = avg / (1 - 0.98 ** (k + 1))
            recorded.append(smooth)
            best = min(best, smooth)
            if smooth > 4 * best:  # fastai's stop_div
                break
        n = len(recorded)
        kept_lrs = lrs[:n][NUM_IT // 10 : n - 5]
        kept = torch.tensor(recorded, dtype=torch.float64)[NUM_IT // 10 : n - 5]
        if _margin_ok(kept_lrs, kept):
            return kept_lrs, kept
    raise RuntimeError(f"no usable learning-rate finder run for seed {seed}")  # pragma: no cover


def finder_lrs(seed: int, noise: float = 0.02, diverge: bool = True) -> torch.Tensor:
    """The learning rates (float64) of a simulated ``lr_find`` run, as its suggestion functions see them."""
    return _finder_run(seed, noise, diverge)[0].clone()


def finder_losses(seed: int, noise: float = 0.02, diverge: bool = True) -> torch.Tensor:
    """The smoothed losses (float64) of the same run as ``finder_lrs(seed, noise, diverge)``."""
    return _finder_run(seed, noise, diverge)[1].clone()
