"""Banking77 (PolyAI): online-banking customer queries, 77 intents. Label = index in categories.json."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from actors.settings import DataSection
from actors.sources.base import (
    SourceSpec,
    SourceTable,
    concat_rejected,
    conform,
    core_fields,
    md5_bucket,
    read_json_list,
    rejected_frame,
    require_columns,
    slice_per_split,
)

NAME = "banking77"
TRAIN_FILE = "train.csv"
TEST_FILE = "test.csv"
CATEGORIES_FILE = "categories.json"

SCHEMA = pa.schema(
    core_fields()
    + [pa.field("text", pa.string()), pa.field("category", pa.string()), pa.field("source", pa.string()),
       pa.field("source_row", pa.int64())]
)  # fmt: skip


def read_categories(path: Path) -> list[str]:
    cats = read_json_list(SPEC, path)
    if not all(isinstance(c, str) for c in cats) or len(set(cats)) != len(cats) or not cats:
        raise SPEC.file_error(path, "expected a JSON array of distinct intent names")
    return cats


def read_split(path: Path, file: str, index: dict[str, int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise SPEC.file_error(path, f"cannot parse as UTF-8 CSV: {e}") from e
    require_columns(SPEC, path, df.columns, ["text", "category"])
    line = np.arange(len(df), dtype="int64") + 2  # physical line number (header = line 1; no field spans lines)
    reason = np.where(
        df["text"].fillna("").str.strip() == "",
        "empty text",
        np.where(df["category"].isin(list(index)), "", "category not in categories.json"),
    )
    bad = reason != ""
    ok = df[~bad]
    rows = pd.DataFrame(
        {"text": ok["text"].to_numpy(), "category": ok["category"].to_numpy(), "source_row": line[~bad]}
    )
    rows["label"] = rows["category"].map(index).astype("int64")
    rows["source"] = file
    return rows, rejected_frame(df[bad], reason[bad], file, line[bad])


def load(root: Path, settings: DataSection) -> SourceTable:
    folder = root / NAME
    index = {c: i for i, c in enumerate(read_categories(folder / CATEGORIES_FILE))}
    train, rej_train = read_split(folder / TRAIN_FILE, TRAIN_FILE, index)
    test, rej_test = read_split(folder / TEST_FILE, TEST_FILE, index)
    # EVAL.md: official test; validation = train texts in md5 bucket 0, held out of training.
    train["split"] = np.where([md5_bucket(t) == 0 for t in train["text"]], "validation", "train")
    test["split"] = "test"
    rows = pd.concat([train, test], ignore_index=True)
    rows["id"] = [f"{s.removesuffix('.csv')}-{r}" for s, r in zip(rows["source"], rows["source_row"], strict=True)]
    n_read = len(rows) + len(rej_train) + len(rej_test)
    rows = conform(rows, SCHEMA)
    rows, n_sliced = slice_per_split(rows, settings.max_rows_per_split)
    return SourceTable(
        NAME,
        rows,
        concat_rejected([rej_train, rej_test]),
        [folder / TRAIN_FILE, folder / TEST_FILE, folder / CATEGORIES_FILE],
        n_read=n_read,
        n_sliced_out=n_sliced,
        classes=list(index),  # the intent head's class count and names come from here (the manifest's classes)
    )


SPEC = SourceSpec(
    name=NAME,
    title="Banking77 (PolyAI): 77 online-banking intents",
    files=(TRAIN_FILE, TEST_FILE, CATEGORIES_FILE),
    source_url="https://github.com/PolyAI-LDN/task-specific-datasets (banking_data/, arXiv:2003.04807)",
    license="CC BY 4.0",
    modalities=("text",),
    schema=SCHEMA,
    load=load,
)
