"""BBT-FinCUGE FinNL: Chinese financial news flashes, used as unlabelled pretraining text (label -1).

The multi-label topic strings are noisy; the tokens that are class names are kept in `topics` for information.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from actors.settings import DataSection
from actors.sources.base import (
    SourceSpec,
    SourceTable,
    concat_rejected,
    conform,
    core_fields,
    read_json_list,
    rejected_frame,
    slice_per_split,
)

NAME = "fincuge_finnl"
TRAIN_FILE = "train_list.json"
EVAL_FILE = "eval_list.json"
CLASSES = (
    "公司", "行业", "大盘", "中国", "外国", "国际", "经济", "政策", "政治",
    "期货", "债券", "房地产", "外汇", "虚拟货币", "新冠", "能源", "其它",
)  # fmt: skip
"""The topic classes of the source README; other label tokens (typos, stray words) are dropped from `topics`."""

SCHEMA = pa.schema(
    core_fields() + [pa.field("text", pa.string()), pa.field("topics", pa.string()), pa.field("source", pa.string())]
)


def clean_topics(labels: str) -> str:
    """Class-name tokens of a label string, in order, space-separated (`split()` drops doubled spaces)."""
    return " ".join(t for t in labels.split() if t in CLASSES)


def read_records(path: Path, file: str, split: str) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    data = read_json_list(SPEC, path)
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
    # train_list → train; eval_list → test (held out: never used for pretraining).
    train, rej_train, n_train = read_records(folder / TRAIN_FILE, TRAIN_FILE, "train")
    test, rej_test, n_test = read_records(folder / EVAL_FILE, EVAL_FILE, "test")
    rows = conform(pd.concat([train, test], ignore_index=True), SCHEMA)
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
    title="BBT-FinCUGE / CFLEB FinNL: financial news classification (Chinese), used as pretraining text",
    files=(TRAIN_FILE, EVAL_FILE),
    source_url="https://github.com/ssymmetry/BBT-FinCUGE-Applications (FinCUGE_Publish/finnl, arXiv:2302.09432)",
    license="none stated (treat as research-only)",
    modalities=("text",),
    schema=SCHEMA,
    load=load,
)
