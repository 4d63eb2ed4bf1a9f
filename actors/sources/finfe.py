"""BBT-FinCUGE FinFE: Chinese stock-forum posts, 3-class sentiment (0 negative, 1 neutral, 2 positive)."""

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
    slice_per_split,
)

NAME = "fincuge_finfe"
TRAIN_FILE = "train_list.json"
EVAL_FILE = "eval_list.json"

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
    if isinstance(label, bool) or label not in (0, 1, 2):
        return f"label {label!r} is not 0, 1 or 2"
    return ""


def read_pairs(path: Path, file: str) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """→ (valid records with text/label/source_row, rejected records, number of records)."""
    data = read_json_list(SPEC, path)
    reasons = [check_record(r) for r in data]
    good = [(i, r[0], int(r[1])) for i, (r, why) in enumerate(zip(data, reasons, strict=True), start=1) if not why]
    bad = [(i, r, why) for i, (r, why) in enumerate(zip(data, reasons, strict=True), start=1) if why]
    rejected = rejected_frame(
        pd.DataFrame({"record": [b[1] for b in bad]}), [b[2] for b in bad], file, [b[0] for b in bad]
    )
    return pd.DataFrame(good, columns=["source_row", "text", "label"]), rejected, len(data)


def load(root: Path, settings: DataSection) -> SourceTable:
    folder = root / NAME
    train, rej_train, n_train = read_pairs(folder / TRAIN_FILE, TRAIN_FILE)
    test, rej_test, n_test = read_pairs(folder / EVAL_FILE, EVAL_FILE)
    # EVAL.md: eval_list is the test set; validation = train texts in md5 bucket 0, held out of training.
    train["split"] = np.where([md5_bucket(t) == 0 for t in train["text"]], "validation", "train")
    train["seen_in_train"] = False
    train["source"] = TRAIN_FILE
    test["split"] = "test"
    test["seen_in_train"] = test["text"].isin(set(train["text"]))
    test["source"] = EVAL_FILE
    rows = pd.concat([train, test], ignore_index=True)
    rows["id"] = [
        f"{'train' if s == TRAIN_FILE else 'eval'}-{r}" for s, r in zip(rows["source"], rows["source_row"], strict=True)
    ]
    rows = conform(rows, SCHEMA)
    rows, n_sliced = slice_per_split(rows, settings.max_rows_per_split)
    return SourceTable(
        NAME,
        rows,
        concat_rejected([rej_train, rej_test]),
        [folder / TRAIN_FILE, folder / EVAL_FILE],
        n_read=n_train + n_test,
        n_sliced_out=n_sliced,
    )


SPEC = SourceSpec(
    name=NAME,
    title="BBT-FinCUGE / CFLEB FinFE: financial social-media sentiment (Chinese)",
    files=(TRAIN_FILE, EVAL_FILE),
    source_url="https://github.com/ssymmetry/BBT-FinCUGE-Applications (FinCUGE_Publish/finfe, arXiv:2302.09432)",
    license="none stated (treat as research-only)",
    modalities=("text",),
    schema=SCHEMA,
    load=load,
)
