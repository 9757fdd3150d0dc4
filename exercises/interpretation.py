"""Model interpretation (fastbook chapter 5, "Model Interpretation").

After training, the book asks fastai where the model goes wrong:

    interp = ClassificationInterpretation.from_learner(learn)
    interp.plot_confusion_matrix(figsize=(12,12), dpi=60)
    interp.most_confused(min_val=5)

With 37 breeds the confusion matrix has 37 x 37 cells and is "very hard to read", so
`most_confused` lists only the cells where the model made the most mistakes. Here you write both.

Replace each `raise NotImplementedError` with your code, then grade one function with
`grade --only interpretation.confusion_matrix` (or `grade` for all of them).
"""

import torch


def confusion_matrix(preds: torch.Tensor, targets: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Count how often each actual class was predicted as each class.

    preds:     int64 tensor of shape (N,): the predicted class of each item (the argmax of the
               model's probabilities), in 0..n_classes-1.
    targets:   int64 tensor of shape (N,): the actual class of each item.
    n_classes: C, the number of classes (the length of the vocab). Some classes may never
               occur in `preds` or `targets`: their rows and columns are zero, but they are there.
    Returns an int64 tensor of shape (C, C): ROWS are the ACTUAL class, COLUMNS the PREDICTED
    class, so cm[i, j] is the number of items of class i that the model called class j. The
    diagonal holds the correct predictions; every other cell is a mistake.

        preds   = torch.tensor([0, 2, 1, 1, 2])
        targets = torch.tensor([0, 1, 1, 1, 2])
        confusion_matrix(preds, targets, 3)
        -> tensor([[1, 0, 0],        # class 0: one item, predicted 0
                   [0, 2, 1],        # class 1: three items, two predicted 1, one predicted 2
                   [0, 0, 1]])       # class 2: one item, predicted 2

    The sum of row i is the number of items of class i; the sum of the whole matrix is N. (fastai
    computes it the same way: `interp.confusion_matrix()`, with the vocab giving the class names.)
    Any correct way is fine: a loop over the items, or one vectorised expression such as
    `torch.bincount(targets * n_classes + preds, minlength=n_classes**2)` reshaped to (C, C).
    """
    raise NotImplementedError


def most_confused(cm: torch.Tensor, vocab: list[str], min_val: int = 1) -> list[tuple[str, str, int]]:
    """The mistakes the model makes most often, as (actual, predicted, count), largest first.

    cm:      int64 tensor (C, C), a confusion matrix as above (rows actual, columns predicted).
    vocab:   C class names; vocab[i] names row i and column i.
    min_val: keep only cells with count >= min_val (at least 1).
    Returns a list of tuples `(vocab[i], vocab[j], count)` for every OFF-diagonal cell i != j with
    cm[i, j] >= min_val (the diagonal holds correct predictions, not confusions), with `count`
    a Python `int`, sorted by count, LARGEST first.

    Ties: cells with the same count stay in row-major order (by actual class index i, then by
    predicted class index j). That is what fastai does: it collects the cells row by row and
    calls Python's `sorted(..., reverse=True)` on the count, and Python's sort is stable (equal
    items keep their order, with or without reverse=True). Note that reversing an ascending sort
    would also reverse the order of the ties.

        cm = torch.tensor([[5, 0, 1],
                           [3, 4, 0],
                           [0, 2, 6]])
        most_confused(cm, ["Birman", "Ragdoll", "Siamese"])
        -> [("Ragdoll", "Birman", 3), ("Siamese", "Ragdoll", 2), ("Birman", "Siamese", 1)]
        most_confused(cm, ["Birman", "Ragdoll", "Siamese"], min_val=2)
        -> [("Ragdoll", "Birman", 3), ("Siamese", "Ragdoll", 2)]     # 2 >= 2 is kept

    The book's model, `interp.most_confused(min_val=5)`, printed:
        [('american_pit_bull_terrier', 'staffordshire_bull_terrier', 10),
         ('Ragdoll', 'Birman', 8), ('Siamese', 'Birman', 6),
         ('Bengal', 'Egyptian_Mau', 5), ('american_pit_bull_terrier', 'american_bulldog', 5)]
    The last two tie at 5: 'Bengal' is row 1 of fastai's sorted vocab, 'american_pit_bull_terrier'
    row 13, so Bengal comes first. Breeds that even experts mix up.
    """
    raise NotImplementedError
