"""Softmax and cross-entropy loss from scratch (fastbook chapter 5, "Cross-Entropy Loss").

You write the pieces PyTorch's `F.cross_entropy` is made of: softmax, log_softmax (with the
LogSumExp trick), negative log likelihood, and cross-entropy. Use only elementwise operations,
reductions (`sum`, `amax`, `mean`) and indexing: `F.softmax`, `torch.softmax`, `F.log_softmax`,
`torch.logsumexp`, `F.nll_loss` and `F.cross_entropy` are not allowed (calling your OWN functions
from this module is fine). Keep autograd working: no `.item()`, no numpy, no `torch.tensor(...)` on
intermediate results, and never change the input in place.

Replace each `raise NotImplementedError` with your code, then grade one function with
`grade --only losses.softmax` (or `grade` for all of them).
"""

import torch


def softmax(acts: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Turn activations into probabilities along `dim`.

    acts: float tensor of any shape (1-D, 2-D (N, C), 3-D, ...). dim: the class dimension
    (negative values count from the end, as everywhere in PyTorch).
    Returns a tensor of the same shape and dtype: entries in [0, 1] that sum to 1 along `dim`.

        softmax(x)_i = exp(x_i) / sum_j exp(x_j)

    The book's bear example: activations 0.02, -2.49, 1.25 -> exp 1.02, 0.08, 3.49 -> softmax
    0.22, 0.02, 0.76. The lesson's 6x2 activations, row 0 [-0.9916, -2.2545] -> [0.7795, 0.2205].

    Overflow trap: the book writes `torch.exp(x) / torch.exp(x).sum(dim=1, keepdim=True)`, but
    exp(1000.) is inf in float32, so [[1000., 1001., 1002.]] gives nan. Softmax does not change
    when you subtract the same number from every entry along `dim`, so subtract the max first:

        m = acts.amax(dim=dim, keepdim=True)     # keepdim so it broadcasts
        e = torch.exp(acts - m)                  # every exponent <= 0: no overflow
        e / e.sum(dim=dim, keepdim=True)

    [[1000., 1001., 1002.]] -> [[0.0900, 0.2447, 0.6652]]. (You may `.detach()` m: the result does
    not depend on it.)
    """
    raise NotImplementedError


def binary_softmax(acts: torch.Tensor) -> torch.Tensor:
    """P(class 0) for a two-class problem, from the difference of the activations.

    acts: float tensor of shape (N, 2). Returns shape (N,), same dtype.

        binary_softmax(acts) = sigmoid(acts[:, 0] - acts[:, 1])

    This equals `softmax(acts, dim=1)[:, 0]`: exp(a)/(exp(a)+exp(b)) = 1/(1+exp(b-a)) =
    sigmoid(a-b). `torch.sigmoid` is allowed here. Lesson example:
    acts [[-0.9916, -2.2545], [0.1560, -1.9368], [-0.6164, 1.1047], [-2.0798, -2.1778],
    [1.6429, -3.7728], [-1.2445, -2.9512]] -> [0.7795, 0.8902, 0.1517, 0.5245, 0.9956, 0.8464]:
    the model is 77.95% sure image 0 is class 0 (and 22.05% that it is class 1).
    """
    raise NotImplementedError


def log_softmax(acts: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log(softmax(acts)) along `dim`, computed without overflow or underflow.

    acts: float tensor of any shape; dim: the class dimension. Same shape and dtype out; every
    entry <= 0.

    Taking `torch.log(softmax(acts))` fails for large gaps: a probability like exp(-200) is 0.0
    in float32 and log(0) = -inf, although the true answer is about -200. Instead use the
    LogSumExp trick, with m = acts.amax(dim=dim, keepdim=True):

        log_softmax(x) = x - log(sum(exp(x)))
                       = x - m - log(sum(exp(x - m)))

    (log(sum(exp(x))) = m + log(sum(exp(x - m))), and now the largest exponent is exp(0) = 1, so the
    sum is between 1 and C: no overflow, no log(0).)

    Example: [[1000., 1001., 1002.]] -> [[-2.4076, -1.4076, -0.4076]]; lesson row 0
    [-0.9916, -2.2545] -> [-0.2491, -1.5120].

    The LogSumExp trick is not in chapter 5: it comes from the book's chapter 19 ("A fastai
    Learner from Scratch"), an extension of this chapter. `torch.logsumexp` and `F.log_softmax`
    are not allowed here: writing the trick IS the exercise.
    """
    raise NotImplementedError


def nll_loss(log_probs: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Negative log likelihood: pick each item's log-probability of its correct class, negate.

    log_probs: float tensor (N, C), usually the output of `log_softmax(acts, dim=1)`.
    targets:   int64 tensor (N,) of class indices in 0..C-1.
    reduction: "none" -> the (N,) losses; "mean" -> their mean (a 0-d tensor); "sum" -> their sum.
               Anything else raises `ValueError`.
    Same dtype as `log_probs`.

        losses[i] = -log_probs[i, targets[i]]      # idx = torch.arange(N); -log_probs[idx, targets]

    Note that nll_loss does NOT take the log itself (the slip in the lesson notes): fed
    probabilities instead of log-probabilities, it just returns minus them. The lesson's
    `F.nll_loss(sm_acts, targ, reduction='none')` with sm_acts = softmax of the 6x2 activations and
    targ [0, 1, 0, 1, 1, 0] gives NEGATIVE numbers [-0.7795, -0.1098, -0.1517, -0.4755, -0.0044,
    -0.8464]. Fed log_softmax of the same activations, it gives the cross-entropy losses
    [0.2491, 2.2091, 1.8857, 0.7434, 5.4201, 0.1667] (printed by the lesson notes; from the 4-decimal
    activations shown you get 0.7433 and 0.1668), mean 1.7790.
    """
    raise NotImplementedError


def cross_entropy(acts: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy loss from raw activations: log_softmax over the classes, then nll_loss.

    acts:      float tensor (N, C) of activations (logits), the class dimension is 1.
    targets:   int64 tensor (N,) of class indices.
    reduction: "none", "mean" or "sum", as in `nll_loss` (anything else raises `ValueError`).

        cross_entropy(acts, targets, reduction) = nll_loss(log_softmax(acts, dim=1), targets, reduction)

    Call your own `log_softmax` and `nll_loss`. That is all `nn.CrossEntropyLoss` does.

    Examples: the lesson's 6x2 activations with targ [0, 1, 0, 1, 1, 0] -> per item
    [0.2491, 2.2091, 1.8857, 0.7433, 5.4201, 0.1668], mean 1.7790 (item 0: -log(0.7795) = 0.2491).
    The book's own `torch.manual_seed(42); acts = torch.randn((6, 2)) * 2` with the same targ ->
    mean 1.8045.

    The book's sidebar: the gradient of the mean cross-entropy with respect to acts is
    (softmax(acts) - onehot(targets)) / N, linear like mean squared error, which is one reason it
    trains well. Autograd gives you this for free as long as you stay with tensor operations.
    """
    raise NotImplementedError
