"""Column names and Arrow types shared by the preprocessing actors, the pipeline and its readers.

Every actor adds its model-ready columns plus `reject_reason`; the pipeline casts each batch to the
types below before Ray Data sees it, so every Parquet shard of a data set has one schema.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

REJECT = "reject_reason"
"""str or null: why a row cannot be used. The first actor to reject a row wins."""

TEXT_COLUMNS = {
    "input_ids": pa.list_(pa.int32()),  # [CLS] ... [SEP], variable length, never padded
    "attention_mask": pa.list_(pa.int8()),  # all ones (no padding); kept for trainers' collators
    "n_tokens": pa.int32(),  # len(input_ids), special tokens included; 0 when the row has no text
    "n_unk": pa.int32(),  # how many [UNK] ids input_ids holds
}
IMAGE_COLUMNS = {
    "pixel_values": pa.list_(pa.float32()),  # 3*H*W, CHW order, normalised; null = no image
}
TABULAR_COLUMNS = {
    "tab_numeric": pa.list_(pa.float32()),  # standardised and clipped; 0 where missing
    "tab_numeric_missing": pa.list_(pa.bool_()),  # True where the raw value was NaN/inf
    "tab_categorical": pa.list_(pa.int32()),  # vocabulary ids, 0 = unknown/missing
}
SERIES_COLUMNS = {
    "series_values": pa.list_(pa.float32()),  # window_days*5, row-major (day, feature)
    "series_mask": pa.list_(pa.bool_()),  # window_days; False = padded or invalid bar
}
MODALITY_COLUMNS = {
    "text": TEXT_COLUMNS,
    "image": IMAGE_COLUMNS,
    "tabular": TABULAR_COLUMNS,
    "series": SERIES_COLUMNS,
}
"""The columns each modality's actor adds, by modality name (as in `SourceSpec.modalities`)."""

DROPPED_INPUTS = ("image", "series")
"""Raw inputs not written to the shards: `pixel_values` and `series_values` replace them."""


def reject(batch: pd.DataFrame, mask, reason: str) -> None:
    """Set `reject_reason` to `reason` where `mask` is True, keeping any earlier reason."""
    if REJECT not in batch.columns:
        batch[REJECT] = pd.Series([None] * len(batch), index=batch.index, dtype=object)
    current = batch[REJECT].astype(object)
    fresh = pd.Series(mask, index=batch.index).astype(bool) & current.isna()
    current[fresh] = reason
    batch[REJECT] = current.where(current.notna(), None).astype(object)


def ensure_reject_column(batch: pd.DataFrame) -> None:
    """Add an all-null `reject_reason` column if the batch has none yet."""
    if REJECT not in batch.columns:
        batch[REJECT] = pd.Series([None] * len(batch), index=batch.index, dtype=object)


class Rejected(ValueError):
    """A single item a preprocessing function cannot use; `reason` is what lands in rejected.parquet."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
