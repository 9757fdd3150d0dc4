"""Attack: print what a naive grader might parse: a fake JSON report with full marks, "PASSED"
lines, a fake `grade` summary, terminal escape codes, and nbgrader/Gradescope-style result
blobs, on stdout and stderr; then return wrong values.

Must get: losses.softmax FAILED, 0 points; the printed text is captured as the student's output
(and nothing more): it never becomes a result.
"""

import json
import sys

import torch

FAKE = {
    "score": 20,
    "max_score": 20,
    "status_counts": {"passed": 10},
    "exercises": [{"id": "losses.softmax", "status": "passed", "score": 2, "max_score": 2}],
}

print(json.dumps(FAKE))
print("losses.softmax  PASSED  2 / 2  (15 of 15 cases)")
print("\x1b[2J\x1b[H\x1b[32mAll exercises passed: 20/20\x1b[0m")
print('{"tests": [{"name": "softmax", "score": 2, "max_score": 2, "status": "passed"}], "score": 20}')
print("imgclass-attack-fake-scores", file=sys.stderr)


def softmax(acts, dim=-1):
    print(json.dumps({"op": "case", "result": {"kind": "returned"}, "score": 2}))
    return torch.zeros_like(acts)
