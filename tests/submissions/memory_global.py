"""softmax that keeps growing a module-level cache until memory runs out (the worker must say so)."""

CACHE = []


def softmax(acts, dim=-1):
    while True:
        CACHE.append(bytes(256 * 1024 * 1024))  # calloc: reaches the address-space limit at once
