"""BBT-FinCUGE FinNL: Chinese financial news flashes, used as unlabelled pretraining text (label -1).

Declared in builtin.yaml (`parser: fincuge_finnl`): the files and the file split come from there; it declares
no label (unlabelled), and `options.topics` lists the topic classes of the source README. What needs Python is
the format, one JSON array of `[text, topics]` pairs per file (not a table), and the cleaning of the noisy
multi-label topic strings: the tokens that are class names are kept in `topics`, for information. The ids
(`<split>-<n>`) and row layout are the historic ones, kept so that prepared shards do not change.
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
from actors.sources.rules import file_splits

NAME = "fincuge_finnl"
DECL = builtin_declaration(NAME)
SPLITS = file_splits(DECL.split, DECL.files)
"""File -> split: train_list → train, eval_list → test (held out: never used for pretraining)."""
CLASSES = tuple(DECL.options["topics"])
"""The topic classes of the source README; other label tokens (typos, stray words) are dropped from `topics`."""

SCHEMA = pa.schema(
    core_fields() + [pa.field("text", pa.string()), pa.field("topics", pa.string()), pa.field("source", pa.string())]
)


def clean_topics(labels: str) -> str:
    """Class-name tokens of a label string, in order, space-separated (`split()` drops doubled spaces)."""
    return " ".join(t for t in labels.split() if t in CLASSES)


def read_records(path: Path, file: str, split: str) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    data = read_json_list(partial(file_error, NAME), path)
    good, bad = [], []
    for i, rec in enumerate(data, start=1):
        if not (isinstance(rec, list) and len(rec) == 2 and isinstance(rec[1], str)):
            bad.append((i, rec, "record is not a [text, labels] pair"))
        elif not isinstance(rec[0], str) or not rec[0].strip():
            bad.append((i, rec, "text is empty or not a string"))
        else:
            good.append((i, rec[0], clean_topics(rec[1])))
    rows = pd.DataFrame(good, columns=["source_row", "text", "topics"])
    rows["split"], rows["source"], rows["label"] = split, file, -1
    rows["id"] = [f"{split}-{r}" for r in rows["source_row"]]
    rejected = rejected_frame(
        pd.DataFrame({"record": [b[1] for b in bad]}), [b[2] for b in bad], file, [b[0] for b in bad]
    )
    return rows, rejected, len(data)


def load(root: Path, settings: DataSection) -> SourceTable:
    folder = root / NAME
    parts = [read_records(folder / file, file, split) for file, split in SPLITS.items()]
    rows = conform(pd.concat([p[0] for p in parts], ignore_index=True), SCHEMA)
    rows, n_sliced = slice_per_split(rows, settings.max_rows_per_split)
    return SourceTable(
        NAME,
        rows,
        concat_rejected([p[1] for p in parts]),
        [folder / f for f in SPLITS],
        n_read=sum(p[2] for p in parts),
        n_sliced_out=n_sliced,
    )


PARSER = Parser(load=load, schema=SCHEMA)
