"""Price-series preprocessing: a window of OHLCV bars -> day-over-day log features and a validity mask.

For a window of window_days+1 bars (oldest first), day t = 1..window_days gives five features relative
to the previous close c_{t-1}:
    log(o_t/c_{t-1}), log(h_t/c_{t-1}), log(l_t/c_{t-1}), log(c_t/c_{t-1}), log1p(v_t) - log1p(v_{t-1})
each clipped to [-clip, clip]. A day is masked (False, values 0) when its bar or the previous close has a
missing or non-positive price; a missing or negative volume only zeroes the volume feature. Shorter
windows are left-padded with masked days, longer ones keep their most recent bars.

`SeriesState` then standardises each of the five features with a mean and std fitted over the real (mask
True) days of the train split: the raw log features are ~1e-2 (returns) and ~1e-1 (volume changes), too
small and too unequal for the model's `Linear(patch_len*5, D)`. The pipeline fits it, stores it in the
manifest (state["series"]) and hands it to `SeriesPreprocessor`; serving reads it back from the bundle.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import pandas as pd

from actors.columns import Rejected, ensure_reject_column, reject
from actors.settings import DataSection, SeriesSettings

N_FEATURES = 5
FEATURE_NAMES = ("log_open", "log_high", "log_low", "log_close", "dlog1p_volume")
NO_BARS = "no valid price bars"
MIN_STD = 1e-8
"""A channel whose train std is below this (a constant channel) is divided by 1 instead."""
NOT_FITTED = "not fitted: no standardisation"


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


@dataclass
class SeriesState:
    """Fitted per-channel standardisation of the day features: `(v - mean) / std` on real days, after the clip.

    Fitted on the real days of the train split only, saved in the manifest as state["series"], carried into
    the bundle, and applied by both `SeriesPreprocessor` (training data) and serve/preprocess.py (requests).
    """

    window_days: int
    """Days per window (`SeriesSettings.window_days` at fit time); the values are (window_days, 5)."""
    clip: float
    """Raw log features are clipped to [-clip, clip] before standardising (`SeriesSettings.clip`)."""
    means: list[float] = field(default_factory=lambda: [0.0] * N_FEATURES)
    """Per-channel mean of the clipped raw features over the fitted real days, in FEATURE_NAMES order."""
    stds: list[float] = field(default_factory=lambda: [1.0] * N_FEATURES)
    """Per-channel population std over the same days; a std below MIN_STD is stored as 1."""
    features: list[str] = field(default_factory=lambda: list(FEATURE_NAMES))
    """The channel names, FEATURE_NAMES."""
    fitted_rows: int = 0
    """Windows the statistics came from (rows whose window has at least one valid day)."""
    fitted_days: int = 0
    """Real (mask True) days the statistics came from; masked padding days are never counted."""
    fitted_on: str = NOT_FITTED
    """Which rows were used ("train"), or NOT_FITTED for the identity state (means 0, stds 1)."""

    @classmethod
    def identity(cls, settings: SeriesSettings | DataSection) -> SeriesState:
        """No standardisation (means 0, stds 1): what a manifest or bundle without a fitted state means."""
        s = _settings(settings)
        return cls(window_days=s.window_days, clip=s.clip)

    @classmethod
    def fit(cls, series: Iterable, settings: SeriesSettings | DataSection, fitted_on: str = "train") -> SeriesState:
        """Means and stds of `series_from_bars` over the real days of `series` (the train rows' bar windows).
        Windows with no valid day (which the actor rejects) are skipped; with no real day at all the state is
        the identity."""
        s = _settings(settings)
        days, rows = [], 0
        for bars in series:
            try:
                values, mask = series_from_bars(bars, s)
            except SeriesRejected:
                continue
            days.append(values[mask])
            rows += 1
        real = np.concatenate(days).astype(np.float64) if days else np.zeros((0, N_FEATURES))
        if not len(real):
            return cls.identity(s)
        stds = real.std(axis=0)
        return cls(
            window_days=s.window_days,
            clip=s.clip,
            means=[float(m) for m in real.mean(axis=0)],
            stds=[float(v) if v >= MIN_STD else 1.0 for v in stds],
            fitted_rows=rows,
            fitted_days=len(real),
            fitted_on=fitted_on,
        )

    @property
    def settings(self) -> SeriesSettings:
        """The `series_from_bars` settings this state was fitted with (window_days, clip)."""
        return SeriesSettings(window_days=self.window_days, clip=self.clip)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SeriesState:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> SeriesState:
        """From `to_json`'s fields, e.g. a manifest's state["series"] (unknown keys are ignored). A manifest
        written before the state was fitted has no "means"/"stds" there: that reads as the identity."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def transform(self, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Standardise (..., W, 5) clipped raw features where `mask` (..., W) is True; masked days stay 0.
        Returns float32 of the same shape."""
        mean = np.asarray(self.means, dtype=np.float32)
        std = np.asarray(self.stds, dtype=np.float32)
        scaled = (np.asarray(values, dtype=np.float32) - mean) / std
        return np.where(np.asarray(mask, dtype=bool)[..., None], scaled, np.float32(0)).astype(np.float32)

    def features_from_bars(self, bars) -> tuple[np.ndarray, np.ndarray]:
        """`series_from_bars` with this state's settings, then `transform`: what the model sees for one
        window (values (W, 5) float32, mask (W,) bool). Raises SeriesRejected if no day is valid."""
        values, mask = series_from_bars(bars, self.settings)
        return self.transform(values, mask), mask


class SeriesPreprocessor:
    """Ray Data actor: `series` (list of OHLCV bars) -> series_values (W*5 float32, standardised by the
    fitted `SeriesState`), series_mask (W bool)."""

    def __init__(self, state_json: str):
        self.state = SeriesState.from_json(state_json)
        self.settings = self.state.settings

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        ensure_reject_column(batch)
        width = self.settings.window_days
        series = batch["series"].tolist() if "series" in batch.columns else [None] * len(batch)
        values, masks, bad = [], [], []
        for bars in series:
            try:
                v, m = self.state.features_from_bars(bars)
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
