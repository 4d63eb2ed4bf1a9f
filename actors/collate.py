"""Turn preprocessed rows (the Parquet shard columns) into the model's batch contract.

Training (cluster/) and serving (serve/) both call `collate`, so a request is batched exactly as a
training example is. The tabular feature space holds the tabular data sets the run was built for (its
declared data sets, never whatever else is on disk), each feature prefixed with its data set's name. A row
fills its own data set's slots, and `feature_mask` marks exactly those: the model attends to a row's own
feature tokens only, and masked feature modelling picks only among them. A run over one tabular data set
has exactly that data set's features.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from actors.tabular import MISSING_ID, TabularState

PAD_ID = 0


@dataclass
class TabularBlock:
    """One data set's slice of the union tabular feature space."""

    dataset: str
    numeric: list[str]
    categorical: list[str]
    cardinalities: list[int]
    bins: list[list[float]] = field(default_factory=list)
    """Per numeric feature, its fitted quantile bin edges (standardised units)."""
    medians: list[float] = field(default_factory=list)
    """Per numeric feature, the reference applicant's value (train median, standardised)."""
    reference_categories: list[int] = field(default_factory=list)
    """Per categorical feature, the reference applicant's id (train mode)."""


@dataclass
class BatchLayout:
    """Everything `collate` needs to know beyond the rows themselves. JSON-serialisable (asdict)."""

    image_size: int = 64
    series_days: int = 5
    series_channels: int = 5
    tabular: list[TabularBlock] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Mapping) -> BatchLayout:
        blocks = [TabularBlock(**b) for b in data.get("tabular", [])]
        return cls(**{**dict(data), "tabular": blocks})

    def to_dict(self) -> dict:
        return asdict(self)

    def add_tabular(self, dataset: str, state: TabularState) -> None:
        """Append `dataset`'s fitted features to the union space (no-op if already there)."""
        if any(b.dataset == dataset for b in self.tabular):
            return
        self.tabular.append(
            TabularBlock(dataset, list(state.numeric_columns), list(state.categorical_columns), state.cardinalities,
                         [list(b) for b in state.bins], list(state.medians), state.reference_categories)
        )

    def tabular_schema(self) -> dict:
        """The model's `tabular` config: prefixed feature names, cardinalities, bins and reference values."""
        return {
            "numeric_features": [f"{b.dataset}.{n}" for b in self.tabular for n in b.numeric],
            "categorical_features": [f"{b.dataset}.{c}" for b in self.tabular for c in b.categorical],
            "categorical_cardinalities": [k for b in self.tabular for k in b.cardinalities],
            "numeric_bins": [e for b in self.tabular for e in b.bins],
            "numeric_reference": [m for b in self.tabular for m in b.medians],
            "categorical_reference": [c for b in self.tabular for c in b.reference_categories],
        }

    def _offsets(self, dataset: str) -> tuple[int, int, TabularBlock]:
        num_at = cat_at = 0
        for block in self.tabular:
            if block.dataset == dataset:
                return num_at, cat_at, block
            num_at += len(block.numeric)
            cat_at += len(block.categorical)
        raise KeyError(f"data set {dataset!r} has no tabular block in this layout (have: "
                       f"{[b.dataset for b in self.tabular]})")


def _is_null(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _stack_lists(values: Sequence, dtype) -> np.ndarray:
    return np.stack([np.asarray(v, dtype=dtype) for v in values])


def collate(rows: Mapping[str, Sequence], layout: BatchLayout, dataset: str | None = None) -> dict:
    """rows: column name -> per-row values (numpy batch or lists). Returns the batch contract dict
    (modality -> tensors) for the modalities whose columns are present, plus "labels" (B,) when a
    `label` column exists. `dataset` names the rows' data set (needed for tabular columns)."""
    batch: dict = {}
    size = len(next(iter(rows.values())))
    if "input_ids" in rows:
        ids = [np.asarray(v if not _is_null(v) else [], dtype=np.int64) for v in rows["input_ids"]]
        width = max(1, max(len(v) for v in ids))
        input_ids = np.full((size, width), PAD_ID, dtype=np.int64)  # (B, T)
        mask = np.zeros((size, width), dtype=np.int64)  # (B, T)
        for i, v in enumerate(ids):
            input_ids[i, : len(v)] = v
            mask[i, : len(v)] = 1
        batch["text"] = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
    if "pixel_values" in rows:
        side = layout.image_size
        present = np.array([not _is_null(v) and len(v) > 0 for v in rows["pixel_values"]])
        pixels = np.zeros((size, 3, side, side), dtype=np.float32)  # (B, 3, H, W)
        for i, v in enumerate(rows["pixel_values"]):
            if present[i]:
                pixels[i] = np.asarray(v, dtype=np.float32).reshape(3, side, side)
        batch["image"] = {"pixel_values": torch.from_numpy(pixels), "present": torch.from_numpy(present)}
    if "tab_numeric" in rows:
        if dataset is None:
            raise ValueError("collate needs the data set name for tabular rows")
        schema = layout.tabular_schema()
        n_num, n_cat = len(schema["numeric_features"]), len(schema["categorical_features"])
        num_at, cat_at, block = layout._offsets(dataset)
        numeric = np.zeros((size, n_num), dtype=np.float32)  # (B, F_num)
        missing = np.ones((size, n_num), dtype=bool)  # (B, F_num)
        categorical = np.full((size, n_cat), MISSING_ID, dtype=np.int64)  # (B, F_cat)
        own = np.zeros((size, n_num + n_cat), dtype=bool)  # (B, F): the row's own data set's features
        span_n, span_c = len(block.numeric), len(block.categorical)
        if span_n:
            numeric[:, num_at : num_at + span_n] = _stack_lists(rows["tab_numeric"], np.float32)
            missing[:, num_at : num_at + span_n] = _stack_lists(rows["tab_numeric_missing"], bool)
            own[:, num_at : num_at + span_n] = True
        if span_c:
            categorical[:, cat_at : cat_at + span_c] = _stack_lists(rows["tab_categorical"], np.int64)
            own[:, n_num + cat_at : n_num + cat_at + span_c] = True
        batch["tabular"] = {
            "numeric": torch.from_numpy(numeric),
            "numeric_missing": torch.from_numpy(missing),
            "categorical": torch.from_numpy(categorical),
            "feature_mask": torch.from_numpy(own),
            "present": torch.ones(size, dtype=torch.bool),
        }
    if "series_values" in rows:
        days, channels = layout.series_days, layout.series_channels
        values = _stack_lists(rows["series_values"], np.float32).reshape(size, days, channels)  # (B, L, C)
        mask = _stack_lists(rows["series_mask"], bool)  # (B, L)
        batch["series"] = {"values": torch.from_numpy(values), "mask": torch.from_numpy(mask)}
    if "label" in rows:
        batch["labels"] = torch.as_tensor(np.asarray(rows["label"], dtype=np.int64))
    return batch


def length_grouped_batches(
    rows: Mapping[str, Sequence], batch_size: int, seed: int, length_column: str = "input_ids"
) -> list[dict[str, list]]:
    """Split a chunk of rows into micro-batches of similar text length, in a seeded random order.

    Sorting by length inside a chunk cuts padding (a plain MiniLM finetune here wasted 50-65% of its
    compute on padding); shuffling the micro-batches keeps the order of lengths random."""
    columns = list(rows)
    size = len(rows[columns[0]])
    if length_column in rows:
        lengths = np.array([0 if _is_null(v) else len(v) for v in rows[length_column]])
        order = np.argsort(lengths, kind="stable")
    else:
        order = np.arange(size)
    groups = [order[i : i + batch_size] for i in range(0, size, batch_size)]
    rng = np.random.default_rng(seed)
    rng.shuffle(groups)
    return [{c: [rows[c][j] for j in g] for c in columns} for g in groups]
