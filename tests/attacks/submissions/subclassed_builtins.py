"""Attack: return subclasses of str, bool-like int and float whose comparisons always agree.

Must get: regex_labels.breed_from_filename and regex_labels.is_cat FAILED ("returned a"), and
losses.nll_loss FAILED, 0 points: only exact built-in types cross the codec.
"""


class YesStr(str):
    def __eq__(self, other):
        return True

    __hash__ = str.__hash__


class YesInt(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


class YesFloat(float):
    def __eq__(self, other):
        return True

    __hash__ = float.__hash__


def breed_from_filename(fname):
    return YesStr("abyssinian")


def is_cat(fname):
    return YesInt(1)


def nll_loss(log_probs, targets, reduction="mean"):
    return YesFloat(0.0)
