"""Tabular preprocessing: standardised numerics with missing flags, categorical vocabularies, and the
quantile bins and reference applicant the model needs.

`TabularState` is fitted on the train split only, saved as JSON next to the data, and loaded again by
serving, so training and serving scale and encode features identically. Categorical ids: 0 = a value unseen
in train (or rarer than `min_category_count`), 1 = missing, 2.. = train values by descending count, so id 2
is each feature's train mode. The bins (per numeric feature, in standardised units) and the reference
applicant (train medians and modes) travel into the model config through the batch layout.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import NamedTuple

import numpy as np
import pandas as pd

from actors.columns import Rejected, ensure_reject_column, reject
from actors.settings import DataSection, TabularSettings
from model.config import CATEGORY_FIRST_VALUE_ID as FIRST_VALUE_ID
from model.config import CATEGORY_MISSING_ID as MISSING_ID
from model.config import CATEGORY_UNSEEN_ID as UNSEEN_ID

NUMERIC_PREFIX = "num__"
CATEGORICAL_PREFIX = "cat__"
ALL_MISSING = "all tabular features missing"


class TabularRejected(Rejected):
    """Every feature of the row is missing."""


def feature_columns(columns: Sequence[str]) -> tuple[list[str], list[str]]:
    """The `num__*` and `cat__*` columns of a source table, in table order."""
    numeric = [c for c in columns if c.startswith(NUMERIC_PREFIX)]
    categorical = [c for c in columns if c.startswith(CATEGORICAL_PREFIX)]
    return numeric, categorical


class TabularFeatures(NamedTuple):
    numeric: np.ndarray  # (n, F) float32, standardised, clipped, 0 where missing
    missing: np.ndarray  # (n, F) bool
    categorical: np.ndarray  # (n, C) int32, 0 = unseen, 1 = missing, 2.. = train values
    all_missing: np.ndarray  # (n,) bool: no feature present at all


def _is_missing(value) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def quantile_bins(values: np.ndarray, num_bins: int) -> list[float]:
    """Bin edges for piecewise-linear encoding of one feature's finite train values (rtdl's quantile bins);
    a feature with fewer than two distinct values gets the two edges [v - 1, v + 1]."""
    import torch
    from rtdl_num_embeddings import compute_bins

    finite = values[np.isfinite(values)]
    distinct = np.unique(finite)
    if len(distinct) < 2:
        centre = float(distinct[0]) if len(distinct) else 0.0
        return [centre - 1.0, centre + 1.0]
    n_bins = max(2, min(num_bins, len(distinct) - 1, len(finite) - 1))
    with warnings.catch_warnings():  # a two-valued feature gets one bin, which rtdl warns about
        warnings.filterwarnings("ignore", message=".*just two bin edges.*")
        (edges,) = compute_bins(torch.as_tensor(finite, dtype=torch.float64)[:, None], n_bins=n_bins)
    return [float(e) for e in edges]


@dataclass
class TabularState:
    """Fitted scaling, vocabularies and bins. Categorical ids: 0 = unseen, 1 = missing, 2.. by descending
    train count."""

    numeric_columns: list[str]
    means: list[float]
    stds: list[float]
    categorical_columns: list[str]
    vocabularies: list[dict[str, int]]
    clip: float
    fitted_rows: int = 0
    fitted_on: str = "train"
    feature_names: list[str] = field(default_factory=list)
    """Model-facing names: numeric columns then categorical columns, prefixes kept."""
    bins: list[list[float]] = field(default_factory=list)
    """Per numeric column, the quantile bin edges of its standardised, clipped train values."""
    medians: list[float] = field(default_factory=list)
    """Per numeric column, the train median in standardised units: the reference applicant's value."""

    @classmethod
    def fit(
        cls,
        train_df: pd.DataFrame,
        numeric_columns: Sequence[str],
        categorical_columns: Sequence[str],
        settings: DataSection | TabularSettings,
        fitted_on: str = "train",
    ) -> TabularState:
        tab = settings.tabular if isinstance(settings, DataSection) else settings
        means, stds = [], []
        for col in numeric_columns:
            values = pd.to_numeric(train_df[col], errors="coerce").to_numpy(dtype=np.float64)
            finite = values[np.isfinite(values)]
            mean = float(finite.mean()) if finite.size else 0.0
            std = float(finite.std()) if finite.size > 1 else 0.0
            means.append(mean)
            stds.append(std if std > 1e-12 else 1.0)
        vocabularies = []
        for col in categorical_columns:
            values = [str(v) for v in train_df[col].tolist() if not _is_missing(v)]
            counts = pd.Series(values, dtype=object).value_counts()
            kept = sorted(
                ((value, int(n)) for value, n in counts.items() if n >= tab.min_category_count),
                key=lambda item: (-item[1], item[0]),
            )
            vocabularies.append({value: i + FIRST_VALUE_ID for i, (value, _) in enumerate(kept)})
        state = cls(
            numeric_columns=list(numeric_columns),
            means=means,
            stds=stds,
            categorical_columns=list(categorical_columns),
            vocabularies=vocabularies,
            clip=tab.clip,
            fitted_rows=len(train_df),
            fitted_on=fitted_on,
            feature_names=list(numeric_columns) + list(categorical_columns),
        )
        if numeric_columns:  # bins and medians in the units the model sees: standardised and clipped
            scaled = state.transform(train_df[list(numeric_columns)]).numeric.astype(np.float64)
            raw = np.column_stack([pd.to_numeric(train_df[c], errors="coerce").to_numpy(dtype=np.float64)
                                   for c in numeric_columns])
            scaled[~np.isfinite(raw)] = np.nan
            state.bins = [quantile_bins(scaled[:, j], tab.num_bins) for j in range(len(numeric_columns))]
            state.medians = [float(np.nanmedian(scaled[:, j])) if np.isfinite(scaled[:, j]).any() else 0.0
                             for j in range(len(numeric_columns))]
        return state

    @property
    def cardinalities(self) -> list[int]:
        """Embedding-table size per categorical feature (vocabulary + the unseen id 0 and the missing id 1)."""
        return [len(v) + FIRST_VALUE_ID for v in self.vocabularies]

    @property
    def reference_categories(self) -> list[int]:
        """The reference applicant's categorical ids: each feature's train mode (missing if it has none)."""
        return [FIRST_VALUE_ID if v else MISSING_ID for v in self.vocabularies]

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TabularState:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> TabularState:
        """From `to_json`'s fields, e.g. a manifest's state["tabular"] (extra keys such as
        "cardinalities" are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def transform(self, df: pd.DataFrame) -> TabularFeatures:
        """-> numeric (n, F) float32, numeric_missing (n, F) bool, categorical (n, C) int32, all_missing (n,).
        A column absent from `df` counts as missing."""
        n = len(df)
        if self.numeric_columns:
            raw = np.column_stack(
                [pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float64) if c in df.columns
                 else np.full(n, np.nan) for c in self.numeric_columns]
            )
        else:
            raw = np.zeros((n, 0))
        missing = ~np.isfinite(raw)
        scaled = (raw - np.asarray(self.means)) / np.asarray(self.stds)
        scaled = np.clip(np.where(missing, 0.0, scaled), -self.clip, self.clip).astype(np.float32)
        categorical = np.zeros((n, len(self.categorical_columns)), dtype=np.int32)
        cat_missing = np.zeros((n, len(self.categorical_columns)), dtype=bool)
        for j, (col, vocab) in enumerate(zip(self.categorical_columns, self.vocabularies, strict=False)):
            for i, value in enumerate(df[col].tolist() if col in df.columns else [None] * n):
                if _is_missing(value):
                    cat_missing[i, j] = True
                    categorical[i, j] = MISSING_ID
                else:
                    categorical[i, j] = vocab.get(str(value), UNSEEN_ID)
        all_missing = missing.all(axis=1) & cat_missing.all(axis=1)
        return TabularFeatures(scaled, missing, categorical, all_missing)

    def transform_one(self, features: Mapping[str, object]) -> dict:
        """One record keyed by column name (absent keys count as missing), as serving calls it.

        Returns {"tab_numeric", "tab_numeric_missing", "tab_categorical"}; raises TabularRejected.
        """
        row = {c: [features.get(c)] for c in self.numeric_columns + self.categorical_columns}
        out = self.transform(pd.DataFrame(row, dtype=object))
        if out.all_missing[0]:
            raise TabularRejected(ALL_MISSING)
        return {
            "tab_numeric": out.numeric[0],
            "tab_numeric_missing": out.missing[0],
            "tab_categorical": out.categorical[0],
        }


class TabularPreprocessor:
    """Ray Data actor: `num__*`/`cat__*` columns -> tab_numeric, tab_numeric_missing, tab_categorical."""

    def __init__(self, state_json: str):
        self.state = TabularState.from_json(state_json)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        ensure_reject_column(batch)
        out = self.state.transform(batch)
        batch["tab_numeric"] = pd.Series(list(out.numeric), index=batch.index, dtype=object)
        batch["tab_numeric_missing"] = pd.Series(list(out.missing), index=batch.index, dtype=object)
        batch["tab_categorical"] = pd.Series(list(out.categorical), index=batch.index, dtype=object)
        reject(batch, out.all_missing, ALL_MISSING)
        return batch
