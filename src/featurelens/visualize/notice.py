"""A figure that says why the figure that belongs in its place could not be drawn."""

from __future__ import annotations

import textwrap

from matplotlib.figure import Figure


def notice_figure(title: str, message: str, width: int = 90) -> Figure:
    """``title`` above ``message`` (wrapped), for a report whose data was missing or damaged."""
    lines = textwrap.wrap(message, width) or [""]
    fig = Figure(figsize=(9, 0.6 + 0.2 * len(lines)), layout="constrained")
    ax = fig.subplots()
    ax.set_axis_off()
    ax.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize=10, family="monospace", color="#57606a",
            transform=ax.transAxes)
    fig.suptitle(title, color="#cf222e", fontsize=13, x=0.01, ha="left")
    return fig
