from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from actors.chart import DOWN, UP, render_candlestick, render_candlestick_array


def bars(n=30, seed=0):
    rng = np.random.default_rng(seed)
    c = 100 + np.cumsum(rng.normal(0, 1, n))
    o = c + rng.normal(0, 1, n)
    return np.stack([o, np.maximum(o, c) + 1, np.minimum(o, c) - 1, c, rng.uniform(1e6, 2e6, n)], axis=1)


def decode(png: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.mode == "RGB"
    return np.asarray(img)


def is_colour(px: np.ndarray, rgb) -> np.ndarray:
    return (px == np.array(rgb, dtype=np.uint8)).all(axis=-1)


def test_deterministic_png_of_requested_size():
    b = bars()
    png = render_candlestick(b)
    assert png == render_candlestick(b.copy())
    assert decode(png).shape == (64, 64, 3)
    assert decode(render_candlestick(b, size=32)).shape == (32, 32, 3)
    assert (decode(png) == render_candlestick_array(b)).all()


def test_up_candle_green_down_candle_red():
    up = np.array([[10.0, 12.0, 9.0, 11.0, 100.0]])
    down = np.array([[11.0, 12.0, 9.0, 10.0, 100.0]])
    img_up, img_down = decode(render_candlestick(up)), decode(render_candlestick(down))
    assert is_colour(img_up, UP).any() and not is_colour(img_up, DOWN).any()
    assert is_colour(img_down, DOWN).any() and not is_colour(img_down, UP).any()
    # the wick reaches the top (high) and bottom (low) of the price area; the body does not
    green_rows = np.where(is_colour(img_up, UP).any(axis=1))[0]
    assert green_rows.min() == 0 and green_rows.max() == 47
    assert is_colour(img_up[:48], UP).sum(axis=1)[0] < is_colour(img_up[:48], UP).sum(axis=1)[24]


def test_nan_bars_are_blank_and_all_nan_is_empty():
    b = bars(4)
    b[1, :4] = np.nan
    img = render_candlestick_array(b)
    assert not img[:48, 16:32].any()  # bar 1's columns: no candle
    assert img[48:, 16:32].any()  # its volume is still drawn
    assert not render_candlestick_array(np.full((30, 5), np.nan)).any()
    assert not render_candlestick_array(np.zeros((0, 5))).any()
    flat = np.tile([[5.0, 5.0, 5.0, 5.0, 0.0]], (3, 1))
    assert render_candlestick_array(flat)[:48].any()  # a flat window still shows candles


def test_bad_shape_is_refused():
    with pytest.raises(ValueError, match="shape"):
        render_candlestick(np.zeros((3, 4)))


def test_speed_under_a_millisecond():
    b = bars()
    render_candlestick(b)
    n = 300
    t = time.perf_counter()
    for _ in range(n):
        render_candlestick(b)
    per_chart = (time.perf_counter() - t) / n
    assert per_chart < 2e-3, f"{per_chart * 1e3:.2f} ms per chart"  # target < 1 ms; slack for a shared CI box
