"""The rows each evaluation needs, read through the project's own loaders (`actors.sources`).

Every split comes from the loaders, so baselines, finmm and the evaluators see exactly the EVAL.md splits.
StockNet is read per ticker with `stocknet.ticker_samples` (the loader's own function) so that the raw price
windows are there without rendering ~26k candlestick charts that no baseline uses.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

from actors.settings import DataSection
from actors.sources import load_source
from actors.sources.base import slice_per_split

EVAL_DATASETS = ("german_credit", "lending_club", "financial_phrasebank", "fincuge_finfe", "banking77", "stocknet")
"""The data sets EVAL.md scores (FinNL has no protocol there and is used for pretraining only)."""

TASK_DATASETS = {
    "credit_risk": ("german_credit", "lending_club"),
    "sentiment": ("financial_phrasebank", "fincuge_finfe"),
    "customer_service": ("banking77",),
    "stock_movement": ("stocknet",),
}
"""Which data sets each task's report covers. German Credit belongs to credit_risk, although finmm's
credit_risk head is finetuned on Lending Club (German needs one finetune per CV fold, see finmm_eval)."""


@lru_cache(maxsize=8)
def _load(name: str, root: str | None, max_rows: int | None) -> pd.DataFrame:
    settings = DataSection(root=Path(root) if root else None, max_rows_per_split=max_rows)
    if name == "stocknet":
        return _stocknet_rows(settings)
    return load_source(name, settings).rows


def _stocknet_rows(settings: DataSection) -> pd.DataFrame:
    from actors.data_root import resolve_data_root
    from actors.sources import stocknet

    root = resolve_data_root(settings.root)
    rows = stocknet.all_samples(root, settings.series.window_days)[0]
    rows, _ = slice_per_split(rows, settings.max_rows_per_split)
    return rows.drop(columns=["raw_pos"])


@lru_cache(maxsize=8)
def _load_declared(name: str, data_json: str) -> pd.DataFrame:
    return load_source(name, DataSection.model_validate_json(data_json)).rows


def load_rows(name: str, root: str | Path | None = None, max_rows: int | None = None,
              data: DataSection | None = None) -> pd.DataFrame:
    """The accepted rows of data set `name` (id, split, label, modality columns, subset flags); with
    `max_rows`, at most that many rows of each split, evenly spaced through the split (files such as
    Banking77's are sorted by class, so the first rows would hold a few classes only). A declared data set
    needs `data` (the data section that declares it). Cached per process; callers must not modify the frame."""
    if data is not None and name in data.declared:
        whole = data.model_copy(update={"root": Path(root) if root else data.root, "max_rows_per_split": None})
        rows = _load_declared(name, whole.model_dump_json())
        return rows if max_rows is None else evenly_spaced(rows, max_rows)
    rows = _load(name, str(root) if root else None, None)
    return rows if max_rows is None else evenly_spaced(rows, max_rows)


def evenly_spaced(rows: pd.DataFrame, max_rows: int) -> pd.DataFrame:
    """At most `max_rows` rows per split, evenly spaced through the split in file order (deterministic): the
    same rule as `finmm prepare` with data.max_rows_per_split, so quick runs score the rows they prepared."""
    return slice_per_split(rows, max_rows)[0]


def split(rows: pd.DataFrame, *names: str) -> pd.DataFrame:
    return rows[rows["split"].isin(names)].reset_index(drop=True)
