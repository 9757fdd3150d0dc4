"""A softmax that raises ZeroDivisionError from its own line."""


def softmax(acts, dim=-1):
    return acts / 0 if False else 1 / 0
