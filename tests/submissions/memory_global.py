"""softmax that keeps growing a module-level cache until memory runs out (the worker must say so)."""

CACHE = []


def softmax(acts, dim=-1):
    while True:
        CACHE.append(bytearray(64 * 1024 * 1024))
