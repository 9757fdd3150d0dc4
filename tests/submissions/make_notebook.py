"""Regenerate notebook_all.ipynb and notebook_broken.ipynb from all_correct.py.

Run from anywhere: python tests/submissions/make_notebook.py
"""

import ast
from pathlib import Path

import nbformat
from nbformat import v4

HERE = Path(__file__).resolve().parent


def _function_sources(path):
    source = path.read_text()
    tree = ast.parse(source)
    return {
        node.name: ast.get_source_segment(source, node)
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
    }


def build():
    fns = _function_sources(HERE / "all_correct.py")

    def code(*names):
        return v4.new_code_cell("\n\n\n".join(fns[n] for n in names))

    explore = v4.new_code_cell("x = torch.randn(3, 4)\nprint(softmax(x))", execution_count=5)
    explore.outputs = [
        v4.new_output(
            "stream",
            name="stdout",
            text="tensor([[0.1011, 0.4426, 0.2232, 0.2331],\n"
            "        [0.0829, 0.5410, 0.0902, 0.2859],\n"
            "        [0.6188, 0.0527, 0.1791, 0.1494]])\n",
        )
    ]
    cells = [
        v4.new_markdown_cell(
            "# Chapter 5: pet breeds\n\nMy answers: labels from file names, presizing, cross-entropy, "
            "interpretation and learning rates."
        ),
        v4.new_code_cell(
            "import math\nimport os\nimport re\n\nimport torch\nimport torch.nn.functional as F"
        ),
        v4.new_markdown_cell("## Labels from file names"),
        code("breed_from_filename", "is_cat"),
        v4.new_code_cell(
            "%matplotlib inline\n"
            "import matplotlib.pyplot as plt\n"
            "!ls\n"
            'print(breed_from_filename("images/great_pyrenees_173.jpg"), is_cat("images/Bengal_3.jpg"))'
        ),
        v4.new_markdown_cell("## Presizing"),
        code("item_resize", "augment_matrix"),
        code("presize_batch"),
        v4.new_markdown_cell("## Softmax and cross-entropy"),
        code("softmax", "binary_softmax"),
        explore,
        code("log_softmax", "nll_loss"),
        code("cross_entropy"),
        v4.new_code_cell(
            "acts = torch.tensor([[-0.9916, -2.2545], [0.1560, -1.9368], [-0.6164, 1.1047]])\n"
            "cross_entropy(acts, torch.tensor([0, 1, 0]), reduction='none')"
        ),
        v4.new_markdown_cell("## Model interpretation"),
        code("confusion_matrix", "most_confused"),
        v4.new_markdown_cell("## Learning rates"),
        code("lr_suggestions", "lrs_for_groups"),
        v4.new_code_cell("lrs_for_groups(slice(1e-6, 1e-4), 3)"),
    ]
    for i, cell in enumerate(cells):
        cell.id = f"cell-{i:02d}"  # fixed ids, so regenerating gives the same file
    nb = v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.validate(nb)
    return nb


def main():
    nb = build()
    good = nbformat.writes(nb)
    (HERE / "notebook_all.ipynb").write_text(good)
    # Not valid JSON: the same notebook cut off part-way, as after a crash while saving.
    (HERE / "notebook_broken.ipynb").write_text(good[: len(good) // 2])


if __name__ == "__main__":
    main()
