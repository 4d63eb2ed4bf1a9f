"""Price-series preprocessing: a window of OHLCV bars -> day-over-day log features and a validity mask.

For a window of window_days+1 bars (oldest first), day t = 1..window_days gives five features relative
to the previous close c_{t-1}:
    log(o_t/c_{t-1}), log(h_t/c_{t-1}), log(l_t/c_{t-1}), log(c_t/c_{t-1}), log1p(v_t) - log1p(v_{t-1})
each clipped to [-clip, clip]. A day is masked (False, values 0) when its bar or the previous close has a
missing or non-positive price; a missing or negative volume only zeroes the volume feature. Shorter
windows are left-padded with masked days, longer ones keep their most recent bars.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from actors.columns import Rejected, ensure_reject_column, reject
from actors.settings import DataSection, SeriesSettings

N_FEATURES = 5
FEATURE_NAMES = ("log_open", "log_high", "log_low", "log_close", "dlog1p_volume")
NO_BARS = "no valid price bars"


class SeriesRejected(Rejected):
    """No day of the window has valid prices."""


def _settings(settings: SeriesSettings | DataSection) -> SeriesSettings:
    return settings.series if isinstance(settings, DataSection) else settings


def _as_bars(bars) -> np.ndarray:
    if bars is None or len(bars) == 0:
        return np.zeros((0, N_FEATURES))
    try:
        arr = np.asarray([np.asarray(b, dtype=np.float64) for b in bars])
    except (TypeError, ValueError):
        raise SeriesRejected(NO_BARS) from None
    if arr.ndim != 2 or arr.shape[1] != N_FEATURES:
        raise SeriesRejected(NO_BARS)
    return arr


def series_from_bars(bars, settings: SeriesSettings | DataSection) -> tuple[np.ndarray, np.ndarray]:
    """Raw bars (T, 5) [open, high, low, close, volume], oldest first -> (values (W, 5) float32,
    mask (W,) bool) with W = window_days. Raises SeriesRejected if no day is valid."""
    s = _settings(settings)
    width = s.window_days
    arr = _as_bars(bars)[-(width + 1) :]  # (T', 5), T' <= W + 1
    values = np.zeros((width, N_FEATURES), dtype=np.float32)
    mask = np.zeros(width, dtype=bool)
    if len(arr) >= 2:
        prev, cur = arr[:-1], arr[1:]  # (D, 5) each, D = T' - 1 days
        base = prev[:, 3:4]  # previous close, (D, 1)
        prices = cur[:, :4]  # (D, 4)
        ok = np.isfinite(prices).all(axis=1) & (prices > 0).all(axis=1)
        ok &= np.isfinite(base[:, 0]) & (base[:, 0] > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            logret = np.log(prices / base)  # (D, 4)
        vol_ok = np.isfinite(cur[:, 4]) & np.isfinite(prev[:, 4]) & (cur[:, 4] >= 0) & (prev[:, 4] >= 0)
        v_cur = np.where(vol_ok, cur[:, 4], 0.0)
        v_prev = np.where(vol_ok, prev[:, 4], 0.0)
        dvol = np.log1p(v_cur) - np.log1p(v_prev)  # (D,), 0 where a volume is missing
        feats = np.concatenate([logret, dvol[:, None]], axis=1)  # (D, 5)
        feats = np.where(ok[:, None], np.clip(feats, -s.clip, s.clip), 0.0)
        days = len(feats)
        values[width - days :] = feats  # left-pad: the most recent day is last
        mask[width - days :] = ok
    if not mask.any():
        raise SeriesRejected(NO_BARS)
    return values, mask


class SeriesPreprocessor:
    """Ray Data actor: `series` (list of OHLCV bars) -> series_values (W*5 float32), series_mask (W bool)."""

    def __init__(self, settings: SeriesSettings | dict):
        self.settings = settings if isinstance(settings, SeriesSettings) else SeriesSettings(**settings)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        ensure_reject_column(batch)
        width = self.settings.window_days
        series = batch["series"].tolist() if "series" in batch.columns else [None] * len(batch)
        values, masks, bad = [], [], []
        for bars in series:
            try:
                v, m = series_from_bars(bars, self.settings)
                values.append(v.ravel())
                masks.append(m)
                bad.append(False)
            except SeriesRejected:
                values.append(np.zeros(width * N_FEATURES, dtype=np.float32))
                masks.append(np.zeros(width, dtype=bool))
                bad.append(True)
        batch["series_values"] = pd.Series(values, index=batch.index, dtype=object)
        batch["series_mask"] = pd.Series(masks, index=batch.index, dtype=object)
        reject(batch, bad, NO_BARS)
        return batch
