"""A softmax that never returns."""


def softmax(acts, dim=-1):
    while True:
        pass
