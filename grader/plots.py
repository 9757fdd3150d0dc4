"""Small plots for HTML reports: a figure's data (from the report dict) -> an SVG data URI.

matplotlib is imported here only, and only when an HTML report has something to plot (``grade``
itself must start fast). No pyplot: a bare ``Figure`` keeps no global state between reports.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping
from typing import Any

#: Largest plot drawn: rows (panels) and values per row.
MAX_ROWS = 8
MAX_COLS = 10
#: Colours: the reference in grey, the student's values in a strong blue.
COLORS = {"reference": "#9aa0a6", "yours": "#1c6fd1"}
_OTHER = ("#e8590c", "#2b8a3e", "#862e9c")


def rows_plot(figure: Mapping[str, Any]) -> str:
    """Grouped bars, one panel per row: each series' values side by side (``""`` if nothing to draw)."""
    series = [
        (str(s["name"]), [[float(v) for v in row[:MAX_COLS]] for row in s["rows"][:MAX_ROWS]])
        for s in figure.get("series", ())
    ]
    series = [
        (name, rows) for name, rows in series if rows and all(math.isfinite(v) for r in rows for v in r)
    ]
    if not series:
        return ""
    n_rows = max(len(rows) for _, rows in series)
    n_cols = max(len(r) for _, rows in series for r in rows)

    import matplotlib
    from matplotlib.figure import Figure

    per_line = min(4, n_rows)
    lines = math.ceil(n_rows / per_line)
    with matplotlib.rc_context(
        {
            "svg.fonttype": "none",  # text stays text: small, and drawn in the page's font
            "svg.hashsalt": "imgclass-kit",  # stable ids: the same data gives the same file
            "font.size": 8,
            "font.family": "sans-serif",
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    ):
        fig = Figure(figsize=(min(2.6 * per_line, 9.0), 1.7 * lines + 0.45), layout="constrained")
        axes = fig.subplots(lines, per_line, sharey=True, squeeze=False)
        width = 0.8 / len(series)
        lo = min(0.0, *(v for _, rows in series for r in rows for v in r))
        hi = max(0.0, *(v for _, rows in series for r in rows for v in r))
        pad = 0.08 * ((hi - lo) or 1.0)
        for i, ax in enumerate(axes.flat):
            if i >= n_rows:
                ax.set_visible(False)
                continue
            for k, (name, rows) in enumerate(series):
                if i >= len(rows):
                    continue
                xs = [j + (k - (len(series) - 1) / 2) * width for j in range(len(rows[i]))]
                color = COLORS.get(name, _OTHER[k % len(_OTHER)])
                ax.bar(xs, rows[i], width=width, color=color, label=name if i == 0 else None)
            ax.set_xticks(range(n_cols))
            ax.set_ylim(lo - pad if lo < 0 else 0.0, hi + pad)
            ax.axhline(0.0, color="#555555", linewidth=0.6)
            ax.tick_params(length=2, pad=1)
            if n_rows > 1:
                ax.set_title(f"row {i}", fontsize=8, pad=2)
        fig.legend(loc="outside upper center", ncols=len(series), frameon=False)
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
