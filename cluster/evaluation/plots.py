"""Small PNG plots drawn with Pillow (matplotlib is not a dependency): line plots (ROC, reliability),
bar charts (ablations) and confusion-matrix heat maps. Each function writes one PNG and returns its path."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

W, H = 480, 400
MARGIN = dict(left=60, right=20, top=36, bottom=50)
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def _canvas(title: str, width: int = W, height: int = H):
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    draw.text((MARGIN["left"], 10), title, fill="black", font=font)
    return img, draw, font


def _frame(draw, font, box, x_range, y_range, xlabel, ylabel, ticks=5):
    left, top, right, bottom = box
    draw.rectangle(box, outline="black")
    for i in range(ticks + 1):
        fx = x_range[0] + (x_range[1] - x_range[0]) * i / ticks
        fy = y_range[0] + (y_range[1] - y_range[0]) * i / ticks
        px = left + (right - left) * i / ticks
        py = bottom - (bottom - top) * i / ticks
        draw.line([(px, bottom), (px, bottom + 4)], fill="black")
        draw.text((px - 10, bottom + 6), f"{fx:.2g}", fill="black", font=font)
        draw.line([(left - 4, py), (left, py)], fill="black")
        draw.text((left - 40, py - 6), f"{fy:.2g}", fill="black", font=font)
    draw.text(((left + right) / 2 - 3 * len(xlabel), bottom + 22), xlabel, fill="black", font=font)
    draw.text((4, top - 16), ylabel, fill="black", font=font)


def line_plot(path: str | Path, curves: Sequence[tuple[str, Sequence[float], Sequence[float]]], title: str,
              xlabel: str, ylabel: str, diagonal: bool = True, markers: bool = False) -> Path:
    """Curves (label, xs, ys) on [0, 1] x [0, 1], with an optional dashed y = x reference line."""
    img, draw, font = _canvas(title)
    box = (MARGIN["left"], MARGIN["top"], W - MARGIN["right"], H - MARGIN["bottom"])
    left, top, right, bottom = box
    _frame(draw, font, box, (0, 1), (0, 1), xlabel, ylabel)

    def to_px(x, y):
        return left + (right - left) * min(max(x, 0), 1), bottom - (bottom - top) * min(max(y, 0), 1)

    if diagonal:
        for i in range(0, 20, 2):
            draw.line([to_px(i / 20, i / 20), to_px((i + 1) / 20, (i + 1) / 20)], fill="#999999")
    for k, (label, xs, ys) in enumerate(curves):
        colour = COLOURS[k % len(COLOURS)]
        points = [to_px(x, y) for x, y in zip(xs, ys, strict=True)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        if markers:
            for px, py in points:
                draw.ellipse([px - 3, py - 3, px + 3, py + 3], outline=colour)
        draw.text((right - 200, bottom - 16 * (len(curves) - k) - 4), label[:34], fill=colour, font=font)
    path = Path(path)
    img.save(path)
    return path


def bar_plot(path: str | Path, labels: Sequence[str], values: Sequence[float], title: str, ylabel: str,
             baseline: float | None = None) -> Path:
    """Vertical bars with their value printed on top; an optional dashed horizontal reference (e.g. chance)."""
    img, draw, font = _canvas(title)
    box = (MARGIN["left"], MARGIN["top"], W - MARGIN["right"], H - MARGIN["bottom"])
    left, top, right, bottom = box
    lo = min(0.0, min(values, default=0.0))
    hi = max([*values, baseline or 0.0, 1e-9])
    hi = hi * 1.1 if hi > 0 else 1.0
    _frame(draw, font, box, (0, 0), (lo, hi), "", ylabel)
    n = max(len(values), 1)
    width = (right - left) / n
    for k, (label, value) in enumerate(zip(labels, values, strict=True)):
        x0 = left + k * width + width * 0.15
        x1 = left + (k + 1) * width - width * 0.15
        y = bottom - (bottom - top) * (value - lo) / (hi - lo)
        y0 = bottom - (bottom - top) * (0 - lo) / (hi - lo)
        draw.rectangle([x0, min(y, y0), x1, max(y, y0)], fill=COLOURS[k % len(COLOURS)])
        draw.text((x0, min(y, y0) - 14), f"{value:.3f}", fill="black", font=font)
        draw.text((x0, bottom + 22), label[:14], fill="black", font=font)
    if baseline is not None:
        yb = bottom - (bottom - top) * (baseline - lo) / (hi - lo)
        for x in range(int(left), int(right), 12):
            draw.line([(x, yb), (x + 6, yb)], fill="#555555")
    path = Path(path)
    img.save(path)
    return path


def confusion_plot(path: str | Path, matrix: Sequence[Sequence[int]], class_names: Sequence[str], title: str) -> Path:
    """Rows = true class, columns = predicted; cell shade = share of the row, count printed when it fits."""
    n = len(matrix)
    cell = max(4, min(60, 360 // max(n, 1)))
    size = MARGIN["left"] + cell * n + 30
    img, draw, font = _canvas(title, width=max(size, 300), height=size + 40)
    x0, y0 = MARGIN["left"], MARGIN["top"] + 14
    for i, row in enumerate(matrix):
        total = max(sum(row), 1)
        for j, count in enumerate(row):
            share = count / total
            shade = int(255 * (1 - share))
            draw.rectangle([x0 + j * cell, y0 + i * cell, x0 + (j + 1) * cell, y0 + (i + 1) * cell],
                           fill=(shade, shade, 255), outline="#dddddd" if cell >= 8 else None)
            if cell >= 30:
                draw.text((x0 + j * cell + 4, y0 + i * cell + cell / 2 - 6), str(count),
                          fill="white" if share > 0.5 else "black", font=font)
        if cell >= 14:
            draw.text((4, y0 + i * cell + cell / 2 - 6), class_names[i][:8], fill="black", font=font)
    draw.text((x0, y0 - 14), "predicted ->   (rows: true class)", fill="black", font=font)
    path = Path(path)
    img.save(path)
    return path
