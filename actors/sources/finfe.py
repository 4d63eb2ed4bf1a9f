"""BBT-FinCUGE FinFE: Chinese stock-forum posts, 3-class sentiment (0 negative, 1 neutral, 2 positive).

Declared in builtin.yaml (`parser: fincuge_finfe`): the files, the label classes and the file split with its
hash holdout come from there. What needs Python is the format, one JSON array of `[text, label]` pairs per file
(not a table), and `seen_in_train`, which marks the eval texts that also occur in train (EVAL.md's "unseen"
figures); plus the historic ids (`train-<n>`, `eval-<n>`) and row layout, kept so that prepared shards do not
change.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pandas as pd
import pyarrow as pa

from actors.settings import DataSection
from actors.sources.base import (
    SourceTable,
    concat_rejected,
    conform,
    core_fields,
    read_json_list,
    rejected_frame,
    slice_per_split,
)
from actors.sources.builtin import Parser, builtin_declaration, file_error
from actors.sources.rules import file_splits, held_out, label_index

NAME = "fincuge_finfe"
DECL = builtin_declaration(NAME)
SPLITS = file_splits(DECL.split, DECL.files)
"""File -> split (train_list → train, with its hash holdout; eval_list → test)."""
LABELS = {int(raw): i for raw, i in label_index(DECL.label).items()}
"""Label value in the file (a JSON integer) -> label id."""

SCHEMA = pa.schema(
    core_fields()
    + [pa.field("text", pa.string()), pa.field("seen_in_train", pa.bool_()), pa.field("source", pa.string())]
)


def check_record(rec: object) -> str:
    """'' if `rec` is a valid `[text, label]` pair, else the reason."""
    if not (isinstance(rec, list) and len(rec) == 2):
        return "record is not a [text, label] pair"
    text, label = rec
    if not isinstance(text, str) or not text.strip():
        return "text is empty or not a string"
    if isinstance(label, bool) or not isinstance(label, (int, float)) or label not in LABELS:
        values = [str(v) for v in LABELS]
        return f"label {label!r} is not {', '.join(values[:-1])} or {values[-1]}"
    return ""


def read_pairs(path: Path, file: str) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """→ (valid records with text/label/source_row, rejected records, number of records)."""
    data = read_json_list(partial(file_error, NAME), path)
    reasons = [check_record(r) for r in data]
    good = [(i, r[0], LABELS[r[1]]) for i, (r, why) in enumerate(zip(data, reasons, strict=True), start=1)
            if not why]
    bad = [(i, r, why) for i, (r, why) in enumerate(zip(data, reasons, strict=True), start=1) if why]
    rejected = rejected_frame(
        pd.DataFrame({"record": [b[1] for b in bad]}), [b[2] for b in bad], file, [b[0] for b in bad]
    )
    return pd.DataFrame(good, columns=["source_row", "text", "label"]), rejected, len(data)


def load(root: Path, settings: DataSection) -> SourceTable:
    folder = root / NAME
    parts, rejected, n_read, train_texts = [], [], 0, set()
    for file, split in SPLITS.items():
        rows, rej, n = read_pairs(folder / file, file)
        rows["source"] = file
        rows["id"] = [f"{file.split('_')[0]}-{r}" for r in rows["source_row"]]  # train-<n>, eval-<n>
        rows["split"] = split
        if split == "train":  # EVAL.md: validation = train texts in md5 bucket 0, held out of training
            rows.loc[held_out(list(rows["text"]), DECL.split.validation), "split"] = "validation"
            train_texts |= set(rows["text"])
        parts.append(rows)
        rejected.append(rej)
        n_read += n
    for p in parts:
        p["seen_in_train"] = (p["split"] == "test") & p["text"].isin(train_texts)
    rows = conform(pd.concat(parts, ignore_index=True), SCHEMA)
    rows, n_sliced = slice_per_split(rows, settings.max_rows_per_split)
    return SourceTable(NAME, rows, concat_rejected(rejected), [folder / f for f in SPLITS], n_read=n_read,
                       n_sliced_out=n_sliced)


PARSER = Parser(load=load, schema=SCHEMA)
