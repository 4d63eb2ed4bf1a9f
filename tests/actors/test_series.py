"""Series actor: log features, clipping, masks, left padding, rejects. No Ray."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from actors.series import SeriesPreprocessor, SeriesRejected, series_from_bars
from actors.settings import SeriesSettings

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
    out = SeriesPreprocessor(S)(batch)
    assert out["reject_reason"].tolist() == [None, "no valid price bars", "no valid price bars"]
    assert len(out["series_values"][0]) == 15 and out["series_mask"][0].tolist() == [True] * 3
