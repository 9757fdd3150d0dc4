"""Attack: every function sleeps just under the suite's per-exercise limit (5 s) on every call.

Each call alone is within the limit, so only the per-exercise and per-submission budgets bound
the total time. Must get: every exercise TIMEOUT, 0 points, and the later exercises are "not
run: the submission's time budget ... ran out" (the total time is bounded by the budget, not by
10 exercises x their cases x 4.6 s).
"""

import time

NAP = 4.6


def breed_from_filename(fname):
    time.sleep(NAP)


def is_cat(fname):
    time.sleep(NAP)


def item_resize(img, size, pos=(0.5, 0.5)):
    time.sleep(NAP)


def augment_matrix(*args, **kwargs):
    time.sleep(NAP)


def presize_batch(*args, **kwargs):
    time.sleep(NAP)


def softmax(acts, dim=-1):
    time.sleep(NAP)


def binary_softmax(acts):
    time.sleep(NAP)


def log_softmax(acts, dim=-1):
    time.sleep(NAP)


def nll_loss(log_probs, targets, reduction="mean"):
    time.sleep(NAP)


def cross_entropy(acts, targets, reduction="mean"):
    time.sleep(NAP)
