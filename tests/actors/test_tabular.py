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
    assert state.vocabularies == [{"B": 1}, {"36": 1}]
    assert state.cardinalities == [2, 2]
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
    assert out.categorical.tolist() == [[1, 1], [0, 0], [0, 1], [0, 0]]
    assert out.all_missing.tolist() == [False, False, False, True]


def test_json_round_trip(state):
    again = TabularState.from_json(state.to_json())
    assert again == state
    manifest_entry = json.loads(state.to_json()) | {"cardinalities": state.cardinalities}
    assert TabularState.from_dict(manifest_entry) == state
    assert again.transform_one({"num__amount": 3.0, "cat__grade": "B"})["tab_categorical"].tolist() == [1, 0]


def test_actor_rejects_all_missing_rows(state):
    actor = TabularPreprocessor(state.to_json())
    batch = TRAIN.copy()
    batch.loc[3, ["cat__term", "num__rate"]] = [None, np.nan]  # row 3: every feature missing
    out = actor(batch)
    assert out["reject_reason"].tolist() == [None, None, None, "all tabular features missing"]
    assert len(out["tab_numeric"][0]) == 2 and out["tab_numeric_missing"][3].tolist() == [True, True]
    with pytest.raises(TabularRejected):
        state.transform_one({})
