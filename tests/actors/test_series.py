"""Series actor: log features, clipping, masks, left padding, rejects, the fitted standardisation. No Ray."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from actors.series import FEATURE_NAMES, NOT_FITTED, SeriesPreprocessor, SeriesRejected, SeriesState, series_from_bars
from actors.settings import DataSection, SeriesSettings

S = SeriesSettings(window_days=3, clip=0.5)


def test_features_are_log_ratios_to_previous_close():
    bars = [
        [10, 11, 9, 10, 100],
        [10.5, 11, 10, 11, 200],
        [11, 12, 10.8, 11.5, 200],
        [11.5, 30, 11, 12, 0],  # high/close = 2.5: log clipped to 0.5
    ]
    values, mask = series_from_bars(bars, S)
    assert values.shape == (3, 5) and values.dtype == np.float32 and mask.tolist() == [True] * 3
    expected_day1 = [
        np.log(10.5 / 10),
        np.log(11 / 10),
        np.log(10 / 10),
        np.log(11 / 10),
        np.log1p(200) - np.log1p(100),
    ]
    np.testing.assert_allclose(values[0], np.clip(expected_day1, -0.5, 0.5), rtol=1e-6)
    assert values[2, 1] == pytest.approx(0.5)  # clipped
    assert values[2, 4] == pytest.approx(-0.5)  # volume 200 -> 0, clipped


def test_short_window_is_left_padded_and_bad_bars_masked():
    bars = [[10, 10, 10, 10, 1], [np.nan, 11, 9, 10, 1], [10, 11, 9, 10.5, 1]]
    values, mask = series_from_bars(bars, S)
    # 3 bars -> 2 days; left pad 1; day with NaN open masked
    assert mask.tolist() == [False, False, True]
    assert (values[:2] == 0).all()
    assert values[2, 3] == pytest.approx(np.log(10.5 / 10))


def test_non_positive_base_masks_the_next_day():
    bars = [[1, 1, 1, 1, 1], [1, 1, 1, 0, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1.1, 1]]
    _, mask = series_from_bars(bars, S)
    assert mask.tolist() == [False, False, True]


@pytest.mark.parametrize("bars", [None, [], [[1, 1, 1, 1, 1]], [[np.nan] * 5] * 4, [[1, 2, 3]] * 4])
def test_no_valid_day_is_rejected(bars):
    with pytest.raises(SeriesRejected, match="no valid price bars"):
        series_from_bars(bars, S)


def test_actor_batch_with_bad_rows():
    good = [[10, 11, 9, 10, 5]] * 4
    batch = pd.DataFrame({"id": ["a", "b", "c"], "series": [good, [[np.nan] * 5] * 4, None]})
    out = SeriesPreprocessor(SeriesState.identity(S).to_json())(batch)
    assert out["reject_reason"].tolist() == [None, "no valid price bars", "no valid price bars"]
    assert len(out["series_values"][0]) == 15 and out["series_mask"][0].tolist() == [True] * 3
    np.testing.assert_array_equal(out["series_values"][0], series_from_bars(good, S)[0].ravel())  # identity


# ---------------------------------------------------------------------------------- fitted SeriesState


def _random_walk(rng, n_bars: int, missing_every: int = 0) -> list[list[float]]:
    """OHLCV bars of a random walk; with missing_every, every k-th bar has a NaN close (masks two days)."""
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, n_bars + 1)))
    bars = []
    for i in range(1, n_bars + 1):
        o = close[i - 1] * np.exp(rng.normal(0, 0.005))
        c = close[i] if not (missing_every and i % missing_every == 0) else np.nan
        hi, lo = max(o, close[i]) * 1.01, min(o, close[i]) * 0.99
        bars.append([o, hi, lo, c, float(rng.integers(1_000, 100_000))])
    return bars


@pytest.fixture(scope="module")
def stocknet_windows() -> pd.DataFrame:
    """Real windows: every sample of the data set's first three tickers (the loader's own function, no charts)."""
    from actors.data_root import resolve_data_root
    from actors.sources import DataRootError, stocknet

    try:
        root = resolve_data_root(None)
    except DataRootError as e:  # the suite is about the real files: a missing data root is a failure
        pytest.fail(f"raw data not available: {e}")
    window = SeriesSettings().window_days
    tickers = stocknet.stock_tickers(root / "stocknet")[:3]
    return pd.concat([stocknet.ticker_samples(root, t, window)[0] for t in tickers], ignore_index=True)


def _real_days(state: SeriesState, series) -> np.ndarray:
    out = [state.features_from_bars(bars) for bars in series]
    return np.concatenate([v[m] for v, m in out])


def test_fitted_state_standardises_train_real_days(stocknet_windows):
    from actors.pipeline import _fit_series

    rows = stocknet_windows
    state = _fit_series(rows, DataSection())
    train = rows.loc[rows["split"] == "train", "series"]
    assert state.fitted_on == "train" and state.fitted_rows == len(train) > 100
    assert state.fitted_days == len(train) * state.window_days  # full real windows: every day is real
    raw = np.concatenate([series_from_bars(b, state.settings)[0] for b in train])
    assert raw.std(axis=0)[:4].max() < 0.05  # raw log returns are ~1e-2: the reason for standardising
    days = _real_days(state, train)  # (days, 5), standardised
    np.testing.assert_allclose(days.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(days.std(axis=0), 1, atol=1e-4)
    # fitted on train only: the validation/test windows do not move the statistics
    assert state == SeriesState.fit(train, DataSection())
    other = rows.loc[rows["split"] != "train", "series"]
    assert len(other) and SeriesState.fit(other, DataSection()).means != state.means


def test_masked_days_are_excluded_and_stay_zero():
    rng = np.random.default_rng(0)
    s = SeriesSettings(window_days=8)
    series = [_random_walk(rng, 9, missing_every=4) for _ in range(60)] + [_random_walk(rng, 4)]  # + a short one
    state = SeriesState.fit(series, s)
    pairs = [series_from_bars(b, s) for b in series]
    real = np.concatenate([v[m] for v, m in pairs]).astype(np.float64)
    assert state.fitted_days == len(real) < 61 * 8  # padding and NaN-close days are not counted
    np.testing.assert_allclose(state.means, real.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(state.stds, real.std(axis=0), rtol=1e-6)
    for bars, (raw, mask) in zip(series, pairs, strict=True):
        values, got_mask = state.features_from_bars(bars)
        assert np.array_equal(got_mask, mask) and not mask.all()
        assert (values[~mask] == 0).all()
        np.testing.assert_allclose(values[mask], (raw[mask] - state.means) / state.stds, rtol=1e-5, atol=1e-6)
    batch = SeriesPreprocessor(state.to_json())(pd.DataFrame({"series": series[:2]}))
    assert (batch["series_values"][0].reshape(8, 5)[~pairs[0][1]] == 0).all()
    assert batch["series_mask"][0].tolist() == pairs[0][1].tolist()


def test_zero_std_falls_back_to_one_and_no_real_day_is_identity():
    bars = [[10, 11, 9, 10 + (i % 2), 500] for i in range(6)]  # constant volume: dlog1p_volume is always 0
    state = SeriesState.fit([bars, bars], S)
    assert state.stds[4] == 1.0 and state.means[4] == 0.0 and min(state.stds[:4]) > 0
    empty = SeriesState.fit([None, [[np.nan] * 5] * 4], S)
    assert empty == SeriesState.identity(S) and empty.fitted_on == NOT_FITTED
    v, m = series_from_bars(bars, S)
    assert np.array_equal(empty.transform(v, m), v)  # identity: bit for bit the raw features


def test_state_round_trips_through_json():
    rng = np.random.default_rng(1)
    state = SeriesState.fit([_random_walk(rng, 6) for _ in range(20)], SeriesSettings())
    text = state.to_json()
    again = SeriesState.from_json(text)
    assert again == state and again.to_json() == text
    as_manifest = json.loads(text)  # a manifest's state["series"], read back
    assert as_manifest["features"] == list(FEATURE_NAMES) and len(as_manifest["means"]) == 5
    assert SeriesState.from_dict(as_manifest | {"extra": 1}) == state
    old = {"features": list(FEATURE_NAMES), "window_days": 5, "clip": 0.5}  # a manifest before the fitted state
    assert SeriesState.from_dict(old) == SeriesState.identity(SeriesSettings())


def _bundle_dir(tmp_path, datasets: dict):
    """A bundle folder with just what serve/preprocess.Preprocessor reads (no weights, no Ray)."""
    from actors.text import base_tokenizer_path
    from serve.preprocess import PREPROCESSING_FILE, TOKENIZER_FILE

    data = DataSection()
    state = {"layout": {}, "datasets": datasets, "data": data.model_dump(mode="json")}
    (tmp_path / PREPROCESSING_FILE).write_text(json.dumps(state))
    shutil.copyfile(base_tokenizer_path(data.text), tmp_path / TOKENIZER_FILE)
    return tmp_path


def test_serving_preprocesses_bars_like_the_training_actor(stocknet_windows, tmp_path):
    from actors.pipeline import _fit_series, _state
    from serve.preprocess import Preprocessor

    data = DataSection()
    state = _fit_series(stocknet_windows, data)
    manifest_state = json.loads(json.dumps(_state(["series"], data, None, None, {}, state)))  # as written
    pre = Preprocessor(_bundle_dir(tmp_path, {"stocknet": manifest_state}))
    assert pre.series == state
    test = stocknet_windows[stocknet_windows["split"] == "test"].head(5)
    actor = SeriesPreprocessor(state.to_json())(test[["id", "series"]].copy())
    for bars, values, mask in zip(test["series"], actor["series_values"], actor["series_mask"], strict=True):
        row = pre.stock_row(bars, None, None)
        np.testing.assert_array_equal(row.columns["series_values"], values)
        np.testing.assert_array_equal(row.columns["series_mask"], mask)
    assert not np.allclose(values, series_from_bars(bars, data)[0].ravel())  # standardised, not raw


def test_serving_without_a_series_state_does_not_standardise(tmp_path):
    from serve.preprocess import Preprocessor

    old = {"features": list(FEATURE_NAMES), "window_days": 5, "clip": 0.5}
    bars = _random_walk(np.random.default_rng(2), 6)
    raw = series_from_bars(bars, SeriesSettings())[0].ravel()
    for datasets in ({}, {"stocknet": {"series": old}}):
        pre = Preprocessor(_bundle_dir(tmp_path, datasets))
        assert pre.series.fitted_on == NOT_FITTED
        np.testing.assert_array_equal(pre.stock_row(bars, None, None).columns["series_values"], raw)
