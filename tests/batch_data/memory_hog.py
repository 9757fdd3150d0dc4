"""A softmax that keeps every intermediate it ever made: it eats memory until the limit stops it."""


def softmax(acts, dim=-1):
    kept = []
    while True:
        kept.append(bytes(512 << 20))  # 512 MiB more, forever
