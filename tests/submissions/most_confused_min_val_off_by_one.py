"""Mistake: count > min_val, so cells with exactly min_val mistakes are dropped."""


def most_confused(cm, vocab, min_val=1):
    pairs = []
    for i, row in enumerate(cm.tolist()):
        for j, count in enumerate(row):
            if i != j and count > min_val:
                pairs.append((vocab[i], vocab[j], count))
    return sorted(pairs, key=lambda p: p[2], reverse=True)
