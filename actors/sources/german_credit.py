"""Statlog (German Credit Data): 1,000 applicants, 13 categorical + 7 numeric attributes, tabular only.

Declared in builtin.yaml (`parser: german_credit`): the attribute names (`read.columns`, after german.doc),
their roles, the label coding and the 5-fold split come from there. What needs Python is the format: headerless
lines of exactly 21 single-space-separated fields, each line checked on its own (a CSV reader would pad a short
line with missing values, or refuse the whole file for a long one), and the historic row layout (`source_row`
after the label, no `source` column), kept so that prepared shards do not change.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from actors.settings import DataSection
from actors.sources.base import SourceTable, conform, core_fields, empty_rejected, rejected_frame, slice_per_split
from actors.sources.builtin import Parser, builtin_declaration, file_error
from actors.sources.rules import generated_id, kfold, label_index

NAME = "german_credit"
DECL = builtin_declaration(NAME)
FILE = DECL.files[0]
LABEL = DECL.label.column
ATTRIBUTES: tuple[tuple[str, bool], ...] = tuple(
    (n, n in DECL.categorical) for n in DECL.read.columns if n != LABEL)
"""(attribute name, categorical?) in file order."""
assert {n for n, _ in ATTRIBUTES} == set(DECL.numeric) | set(DECL.categorical), "every attribute needs a role"
CAT_COLS = [f"cat__{n}" for n, c in ATTRIBUTES if c]
NUM_COLS = [f"num__{n}" for n, c in ATTRIBUTES if not c]
LABELS = label_index(DECL.label)

SCHEMA = pa.schema(
    core_fields()
    + [pa.field("source_row", pa.int64())]
    + [pa.field(c, pa.float64()) for c in NUM_COLS]
    + [pa.field(c, pa.string()) for c in CAT_COLS]
)


def load(root: Path, settings: DataSection) -> SourceTable:
    path = root / NAME / FILE
    field_names = list(DECL.read.columns)
    label_at = field_names.index(LABEL)
    try:
        lines = path.read_text(encoding=DECL.read.encoding).splitlines()
    except UnicodeDecodeError as e:
        raise file_error(NAME, path, f"not {DECL.read.encoding.upper()} text ({e})") from e
    records, bad, bad_rows, reasons = [], [], [], []
    for i, line in enumerate(lines, start=1):
        parts = line.split(DECL.read.delimiter)
        problem = None
        if len(parts) != len(field_names):
            problem = f"expected {len(field_names)} space-separated fields, found {len(parts)}"
        elif parts[label_at] not in LABELS:
            problem = f"{LABEL} is {parts[label_at]!r}, not {' or '.join(LABELS)}"
        else:
            try:
                [float(parts[j]) for j, (_, cat) in enumerate(ATTRIBUTES) if not cat]
            except ValueError:
                problem = "a numeric attribute is not a number"
        if problem:
            bad.append(dict(zip(field_names, parts, strict=True)) if len(parts) == len(field_names) else {"line": line})
            bad_rows.append(i)
            reasons.append(problem)
        else:
            records.append([i] + parts)
    if not lines:
        raise file_error(NAME, path, "file is empty")
    df = pd.DataFrame(records, columns=["source_row"] + field_names)
    rows = pd.DataFrame({"id": [generated_id(DECL.id_format, FILE, r) for r in df["source_row"]],
                         "source_row": df["source_row"]})
    rows["label"] = df[LABEL].map(LABELS).astype("int64")
    for name, cat in ATTRIBUTES:
        if cat:
            rows[f"cat__{name}"] = df[name].astype("str")
        else:
            rows[f"num__{name}"] = df[name].astype("float64")
    # EVAL.md: StratifiedKFold(5, shuffle=True, random_state=0) over the rows in file order; a row's split is the
    # fold in which it is a test row.
    rows["split"] = kfold(rows["label"].to_numpy(), DECL.split)
    rows = conform(rows, SCHEMA)
    rows, n_sliced = slice_per_split(rows, settings.max_rows_per_split)
    if bad:
        rejected = rejected_frame(pd.DataFrame(bad), reasons, FILE, bad_rows)
    else:
        rejected = empty_rejected(field_names)
    return SourceTable(NAME, rows, rejected, [path], n_read=len(lines), n_sliced_out=n_sliced)


PARSER = Parser(load=load, schema=SCHEMA)
