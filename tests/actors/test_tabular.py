"""Tabular state: fit on train only, scaling, missing flags, vocabularies, JSON round trip. No Ray."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from actors.settings import DataSection, TabularSettings
from actors.tabular import TabularPreprocessor, TabularRejected, TabularState, feature_columns

TRAIN = pd.DataFrame(
    {
        "num__amount": [1.0, 2.0, 3.0, np.nan],
        "num__rate": [10.0, 10.0, 10.0, 10.0],  # constant: std falls back to 1
        "cat__grade": ["B", "A", "B", None],
        "cat__term": ["36", "36", "60", "rare"],
        "split": ["train"] * 4,
    }
)


@pytest.fixture()
def state():
    num, cat = feature_columns(TRAIN.columns)
    settings = DataSection(tabular=TabularSettings(clip=1.5, min_category_count=2))
    return TabularState.fit(TRAIN, num, cat, settings)


def test_fit_statistics_and_vocabulary(state):
    assert state.numeric_columns == ["num__amount", "num__rate"]
    assert state.means == pytest.approx([2.0, 10.0])
    assert state.stds[0] == pytest.approx(np.std([1.0, 2.0, 3.0]))
    assert state.stds[1] == 1.0
    # ids by descending count then value; "A" and "60" and "rare" are below min_category_count=2
    assert state.vocabularies == [{"B": 2}, {"36": 2}]  # 0 = unseen, 1 = missing
    assert state.cardinalities == [3, 3]
    assert state.reference_categories == [2, 2]  # the train mode
    assert state.feature_names == ["num__amount", "num__rate", "cat__grade", "cat__term"]


def test_transform_scales_clips_and_flags_missing(state):
    df = pd.DataFrame(
        {
            "num__amount": [2.0, 100.0, np.inf, np.nan],
            "num__rate": [10.0, 11.0, np.nan, np.nan],
            "cat__grade": ["B", "Z", None, None],
            "cat__term": ["36", "60", "36", None],
        }
    )
    out = state.transform(df)
    assert out.numeric.dtype == np.float32 and out.categorical.dtype == np.int32
    assert out.numeric[0].tolist() == [0.0, 0.0]
    assert out.numeric[1].tolist() == [1.5, 1.0]  # 100 clipped to +clip
    assert out.missing[2].tolist() == [True, True] and out.numeric[2].tolist() == [0.0, 0.0]
    assert out.categorical.tolist() == [[2, 2], [0, 0], [1, 2], [1, 1]]  # unseen "Z"/"60" 0, missing 1
    assert out.all_missing.tolist() == [False, False, False, True]


def test_json_round_trip(state):
    again = TabularState.from_json(state.to_json())
    assert again == state
    manifest_entry = json.loads(state.to_json()) | {"cardinalities": state.cardinalities}
    assert TabularState.from_dict(manifest_entry) == state
    assert again.transform_one({"num__amount": 3.0, "cat__grade": "B"})["tab_categorical"].tolist() == [2, 1]


def test_actor_rejects_all_missing_rows(state):
    actor = TabularPreprocessor(state.to_json())
    batch = TRAIN.copy()
    batch.loc[3, ["cat__term", "num__rate"]] = [None, np.nan]  # row 3: every feature missing
    out = actor(batch)
    assert out["reject_reason"].tolist() == [None, None, None, "all tabular features missing"]
    assert len(out["tab_numeric"][0]) == 2 and out["tab_numeric_missing"][3].tolist() == [True, True]
    with pytest.raises(TabularRejected):
        state.transform_one({})


def test_bins_and_medians_are_fitted_on_standardised_train_values():
    rng = np.random.default_rng(0)
    income = np.exp(rng.normal(11, 1, 2000))  # heavy-tailed, like annual_inc
    train = pd.DataFrame({"num__income": income, "cat__x": ["a"] * 2000, "split": ["train"] * 2000})
    state = TabularState.fit(train, ["num__income"], ["cat__x"], DataSection(tabular=TabularSettings(num_bins=8)))
    scaled = state.transform(train).numeric[:, 0]
    edges = np.asarray(state.bins[0])
    assert len(edges) == 9 and np.all(np.diff(edges) > 0)
    assert edges[0] == pytest.approx(scaled.min(), abs=1e-5) and edges[-1] == pytest.approx(scaled.max(), abs=1e-5)
    counts = np.histogram(scaled, bins=edges)[0]
    assert counts.min() > 0.8 * len(train) / 8  # quantile bins: each holds about an eighth of train
    assert state.medians[0] == pytest.approx(float(np.median(scaled)), abs=1e-5)
    assert TabularState.from_json(state.to_json()).bins == state.bins


def test_a_constant_feature_still_gets_two_edges(state):
    assert len(state.bins[1]) == 2 and state.bins[1][0] < state.bins[1][1]
