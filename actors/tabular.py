"""Tabular preprocessing: standardised numerics with missing flags, categorical vocabularies.

`TabularState` is fitted on the train split only, saved as JSON next to the data, and loaded again by
serving, so training and serving scale and encode features identically.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import NamedTuple

import numpy as np
import pandas as pd

from actors.columns import Rejected, ensure_reject_column, reject
from actors.settings import DataSection, TabularSettings

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
    categorical: np.ndarray  # (n, C) int32, 0 = unknown or missing
    all_missing: np.ndarray  # (n,) bool: no feature present at all


def _is_missing(value) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


@dataclass
class TabularState:
    """Fitted scaling and vocabularies. ids: 0 = unknown or missing, 1..n by descending train count."""

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
            vocabularies.append({value: i + 1 for i, (value, _) in enumerate(kept)})
        return cls(
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

    @property
    def cardinalities(self) -> list[int]:
        """Embedding-table size per categorical feature (vocabulary + the unknown id 0)."""
        return [len(v) + 1 for v in self.vocabularies]

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
        """-> numeric (n, F) float32, numeric_missing (n, F) bool, categorical (n, C) int32, all_missing (n,)."""
        n = len(df)
        if self.numeric_columns:
            raw = np.column_stack(
                [pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float64) for c in self.numeric_columns]
            )
        else:
            raw = np.zeros((n, 0))
        missing = ~np.isfinite(raw)
        scaled = (raw - np.asarray(self.means)) / np.asarray(self.stds)
        scaled = np.clip(np.where(missing, 0.0, scaled), -self.clip, self.clip).astype(np.float32)
        categorical = np.zeros((n, len(self.categorical_columns)), dtype=np.int32)
        cat_missing = np.zeros((n, len(self.categorical_columns)), dtype=bool)
        for j, (col, vocab) in enumerate(zip(self.categorical_columns, self.vocabularies, strict=False)):
            for i, value in enumerate(df[col].tolist()):
                if _is_missing(value):
                    cat_missing[i, j] = True
                else:
                    categorical[i, j] = vocab.get(str(value), 0)
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
