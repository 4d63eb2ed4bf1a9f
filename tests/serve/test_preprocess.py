"""Serving encodes a credit record exactly as training did: the fitted bins, scaling and vocabularies travel in
the bundle, and a raw Lending Club record sent to the server becomes the same features as its prepared row."""

from __future__ import annotations

import numpy as np

from actors.data_root import resolve_data_root
from actors.settings import DataSection
from actors.sources import load_source
from evaluation.finmm_eval import read_split
from model.bundle import load_bundle
from serve.preprocess import Preprocessor


def test_credit_features_round_trip_through_the_bundle(model_bundle):
    pre = Preprocessor(model_bundle)
    state = pre.tabular["lending_club"]
    config = load_bundle(model_bundle).config
    n_own = len(state.numeric_columns)
    own_bins = [b for name, b in zip(config.tabular.numeric_features, config.tabular.numeric_bins, strict=True)
                if name.startswith("lending_club.")]
    assert own_bins == state.bins and len(own_bins) == n_own  # the model's bins are the fitted ones

    table = read_split(model_bundle.parent / "data", "lending_club", "test").to_pylist()[:8]
    raw = load_source("lending_club", DataSection(), root=resolve_data_root(None)).rows.set_index("id")
    for prepared in table:
        record = raw.loc[prepared["id"]]
        features = {c.split("__", 1)[1]: record[c] for c in state.numeric_columns + state.categorical_columns}
        served = pre.credit_row(features, None, None).columns
        np.testing.assert_array_equal(served["tab_numeric"], np.asarray(prepared["tab_numeric"], np.float32))
        np.testing.assert_array_equal(served["tab_numeric_missing"], np.asarray(prepared["tab_numeric_missing"]))
        np.testing.assert_array_equal(served["tab_categorical"], np.asarray(prepared["tab_categorical"]))
