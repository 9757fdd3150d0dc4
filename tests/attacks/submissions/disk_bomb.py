"""Attack: softmax writes a 1 GiB file into its working directory, then into /tmp.

Must get: losses.softmax ERROR (an OSError: RLIMIT_FSIZE gives EFBIG at 16 MiB, or the worker's
small private /tmp is full), 0 points; nothing is written outside the worker's own directory.
"""

import os


def softmax(acts, dim=-1):
    block = b"\0" * (1 << 20)
    for folder in (os.getcwd(), "/tmp"):
        with open(os.path.join(folder, "imgclass-attack-disk-bomb.bin"), "wb") as f:
            for _ in range(1024):
                f.write(block)
    return acts
