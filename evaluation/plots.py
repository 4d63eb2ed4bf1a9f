"""The report's PNG plots, drawn with matplotlib's object-oriented API on the Agg canvas (no pyplot, no global
state, nothing to close but the figure itself): line plots (ROC, reliability with its rows-per-bin panel), bar
charts (models, ablations) and confusion-matrix heat maps.

Each function writes one PNG and returns a `PlotFile`: its path, its pixel size and its number of panels
(axes holding data; colour bars are not panels). A `PlotFile` is path-like (`open(plot)`, `Image.open(plot)`,
`plot.name`), so callers that expect a path keep working. The size is exactly `figsize * DPI` (no tight
bounding box), so the report can state it before anyone opens the file.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 110
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
FINMM_COLOUR = "#ff7f0e"
BASELINE_COLOUR = "#4c72b0"
LABEL_WIDTH = 16
"""Characters per line of a bar's tick label before it wraps."""


@dataclass(frozen=True)
class PlotFile:
    """One written PNG: where it is, its size in pixels and how many panels (data axes) it has."""

    path: Path
    width: int
    height: int
    panels: int

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    def to_dict(self) -> dict:
        return {"file": self.path.name, "width_px": self.width, "height_px": self.height, "panels": self.panels}


def _figure(width_in: float, height_in: float) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> PlotFile:
    path = Path(path)
    try:
        fig.savefig(path, dpi=DPI, format="png", facecolor="white")
        width, height = (round(v) for v in fig.get_size_inches() * DPI)
        panels = sum(1 for ax in fig.axes if ax.get_label() != "<colorbar>")
    finally:
        fig.clear()  # drop the artists now; the figure itself is never registered anywhere global
    return PlotFile(path, width, height, panels)


def _wrap(label: str, width: int = LABEL_WIDTH) -> str:
    return "\n".join(textwrap.wrap(str(label), width, break_long_words=True)) or str(label)


def line_plot(path: str | Path, curves: Sequence[tuple[str, Sequence[float], Sequence[float]]], title: str,
              xlabel: str, ylabel: str, diagonal: bool = True, markers: bool = False, *,
              diagonal_label: str = "y = x",
              counts: Sequence[Sequence[tuple[float, float, int]]] | None = None) -> PlotFile:
    """Curves (label, xs, ys) on [0, 1] x [0, 1], with an optional dashed y = x reference line. With `counts`
    (per curve, its bins as (lo, hi, rows)), a second panel below shows the rows per bin on a log scale: the
    reliability diagram's histogram, which says how much each point of the curve is worth."""
    two = bool(counts) and any(counts)
    fig = _figure(6.4, 6.6 if two else 5.4)
    if two:
        ax, hist = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    else:
        ax, hist = fig.add_subplot(), None
    if diagonal:
        ax.plot([0, 1], [0, 1], linestyle="--", color="#888888", linewidth=1, label=diagonal_label)
    for k, (label, xs, ys) in enumerate(curves):
        ax.plot(list(xs), list(ys), color=COLOURS[k % len(COLOURS)], linewidth=1.8, label=label,
                marker="o" if markers else None, markersize=4)
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel=ylabel, title=title)
    ax.set_aspect("equal" if not two else "auto")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right" if not markers else "upper left", fontsize="small", framealpha=0.9)
    if hist is not None:
        n = max(len(counts), 1)
        for k, bins in enumerate(counts):
            for lo, hi, rows in bins:
                step = (hi - lo) / n
                hist.bar(lo + k * step, rows, width=step, align="edge", color=COLOURS[k % len(COLOURS)],
                         alpha=0.85)
        hist.set_yscale("log")
        hist.set(ylabel="rows per bin", xlim=(0, 1))
        hist.grid(True, axis="y", alpha=0.3)
        hist.set_xlabel(xlabel)
    else:
        ax.set_xlabel(xlabel)
    return _save(fig, path)


def bar_plot(path: str | Path, labels: Sequence[str], values: Sequence[float], title: str, ylabel: str,
             baseline: float | None = None, *, baseline_label: str | None = None) -> PlotFile:
    """Vertical bars with their value printed on each; long labels wrap (and tilt when there are many bars);
    a bar labelled "finmm..." is drawn in its own colour; an optional dashed horizontal reference (e.g. chance)."""
    labels, values = [str(label) for label in labels], [float(v) for v in values]
    n = len(values)
    fig = _figure(min(max(6.4, 1.35 * n + 1.6), 16.0), 5.2)
    ax = fig.add_subplot()
    colours = [FINMM_COLOUR if label.lower().startswith("finmm") else BASELINE_COLOUR for label in labels]
    bars = ax.bar(range(n), values, color=colours, width=0.65, zorder=2)
    ax.bar_label(bars, labels=[f"{v:.3f}" for v in values], padding=3, fontsize="small")
    many = n > 8
    ax.set_xticks(range(n), [_wrap(label, 24 if many else LABEL_WIDTH) for label in labels],
                  rotation=35 if many else 0, ha="right" if many else "center", fontsize="small")
    lo = min([0.0, *values, *([baseline] if baseline is not None else [])])
    hi = max([0.0, *values, *([baseline] if baseline is not None else [])])
    span = (hi - lo) or 1.0
    ax.set_ylim(lo - (0.1 * span if lo < 0 else 0.0), hi + 0.15 * span)
    if lo < 0 and baseline != 0:
        ax.axhline(0.0, color="black", linewidth=0.8, zorder=1)
    if baseline is not None:
        ax.axhline(baseline, linestyle="--", color="#555555", linewidth=1.2, zorder=3,
                   label=baseline_label or f"reference ({baseline:g})")
        ax.legend(loc="upper right", fontsize="small")
    ax.set(ylabel=ylabel, title=title)
    ax.grid(True, axis="y", alpha=0.3, zorder=0)
    return _save(fig, path)


def confusion_plot(path: str | Path, matrix: Sequence[Sequence[int]], class_names: Sequence[str],
                   title: str) -> PlotFile:
    """Rows = true class, columns = predicted; cell shade = share of the row (0 to 1), the count and share
    printed in each cell while the matrix is small enough to read them."""
    counts = [[int(c) for c in row] for row in matrix]
    n = len(counts)
    names = [str(class_names[i]) if i < len(class_names) else str(i) for i in range(n)]
    shares = [[c / max(sum(row), 1) for c in row] for row in counts]
    side = min(max(4.6, 0.32 * n + 2.6), 14.0)
    fig = _figure(side + 1.2, side + 0.4)
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
    if n <= 12:
        for i, row in enumerate(counts):
            for j, count in enumerate(row):
                ax.text(j, i, f"{count}\n{shares[i][j]:.0%}", ha="center", va="center", fontsize="small",
                        color="white" if shares[i][j] > 0.5 else "black")
    step = max(1, -(-n // 30))  # at most ~30 tick labels per axis
    ticks = list(range(0, n, step))
    ax.set_xticks(ticks, [names[t] for t in ticks], rotation=0 if n <= 4 else 45,
                  ha="center" if n <= 4 else "right", fontsize="small" if n <= 30 else "x-small")
    ax.set_yticks(ticks, [names[t] for t in ticks], fontsize="small" if n <= 30 else "x-small")
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    return _save(fig, path)


def learning_curve_plot(path: str | Path, runs: Sequence[tuple[str, Sequence[int], Sequence[float]]],
                        losses: Sequence[tuple[str, Sequence[int], Sequence[float]]], title: str,
                        metric: str) -> PlotFile:
    """Two panels against optimizer steps: the validation `metric` of each run (points at each epoch's end)
    above, its training loss below."""
    fig = _figure(7.2, 6.4)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    for k, (label, steps, values) in enumerate(runs):
        top.plot(list(steps), list(values), color=COLOURS[k % len(COLOURS)], marker="o", linewidth=1.8,
                 label=_wrap(label, 40))
        for x, y in zip(steps, values, strict=True):
            top.annotate(f"{y:.3f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center",
                         fontsize="x-small")
    top.set(ylabel=f"validation {metric}", title=title)
    top.grid(True, alpha=0.3)
    top.legend(loc="best", fontsize="small", framealpha=0.9)
    for k, (label, steps, values) in enumerate(losses):
        bottom.plot(list(steps), list(values), color=COLOURS[k % len(COLOURS)], linewidth=1.2, label=label)
    bottom.set(xlabel="optimizer step", ylabel="training loss")
    bottom.grid(True, alpha=0.3)
    return _save(fig, path)
