"""Statlog (German Credit Data): 1,000 applicants, 13 categorical + 7 numeric attributes, tabular only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from actors.settings import DataSection
from actors.sources.base import (
    SourceSpec,
    SourceTable,
    conform,
    core_fields,
    empty_rejected,
    rejected_frame,
    slice_per_split,
)

NAME = "german_credit"
FILE = "german.data"

# (attribute name, categorical?) in file order; names follow german.doc.
ATTRIBUTES: tuple[tuple[str, bool], ...] = (
    ("checking_status", True),
    ("duration_months", False),
    ("credit_history", True),
    ("purpose", True),
    ("credit_amount", False),
    ("savings", True),
    ("employment_since", True),
    ("installment_rate", False),
    ("personal_status_sex", True),
    ("other_debtors", True),
    ("residence_since", False),
    ("property", True),
    ("age_years", False),
    ("other_installment_plans", True),
    ("housing", True),
    ("existing_credits", False),
    ("job", True),
    ("people_liable", False),
    ("telephone", True),
    ("foreign_worker", True),
)
CAT_COLS = [f"cat__{n}" for n, c in ATTRIBUTES if c]
NUM_COLS = [f"num__{n}" for n, c in ATTRIBUTES if not c]
N_FOLDS = 5

SCHEMA = pa.schema(
    core_fields()
    + [pa.field("source_row", pa.int64())]
    + [pa.field(c, pa.float64()) for c in NUM_COLS]
    + [pa.field(c, pa.string()) for c in CAT_COLS]
)


def load(root: Path, settings: DataSection) -> SourceTable:
    from sklearn.model_selection import StratifiedKFold

    path = root / NAME / FILE
    field_names = [n for n, _ in ATTRIBUTES] + ["class"]
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except UnicodeDecodeError as e:
        raise SPEC.file_error(path, f"not ASCII text ({e})") from e
    records, bad, bad_rows, reasons = [], [], [], []
    for i, line in enumerate(lines, start=1):
        parts = line.split(" ")
        problem = None
        if len(parts) != len(field_names):
            problem = f"expected {len(field_names)} space-separated fields, found {len(parts)}"
        elif parts[-1] not in ("1", "2"):
            problem = f"class is {parts[-1]!r}, not 1 or 2"
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
        raise SPEC.file_error(path, "file is empty")
    df = pd.DataFrame(records, columns=["source_row"] + field_names)
    rows = pd.DataFrame({"id": [f"row{r:04d}" for r in df["source_row"]], "source_row": df["source_row"]})
    rows["label"] = (df["class"] == "2").astype("int64")
    for name, cat in ATTRIBUTES:
        if cat:
            rows[f"cat__{name}"] = df[name].astype("str")
        else:
            rows[f"num__{name}"] = df[name].astype("float64")
    # EVAL.md: StratifiedKFold(5, shuffle=True, random_state=0) over the rows in file order; a row's split is the
    # fold in which it is a test row.
    fold = np.full(len(rows), -1)
    if len(rows) >= N_FOLDS:
        skf = StratifiedKFold(n_splits=N_FOLDS, shuffle=True, random_state=0)
        for k, (_, test_idx) in enumerate(skf.split(np.zeros(len(rows)), rows["label"].to_numpy())):
            fold[test_idx] = k
    rows["split"] = [f"fold{k}" for k in fold]
    rows = conform(rows, SCHEMA)
    rows, n_sliced = slice_per_split(rows, settings.max_rows_per_split)
    if bad:
        rejected = rejected_frame(pd.DataFrame(bad), reasons, FILE, bad_rows)
    else:
        rejected = empty_rejected(field_names)
    return SourceTable(NAME, rows, rejected, [path], n_read=len(lines), n_sliced_out=n_sliced)


SPEC = SourceSpec(
    name=NAME,
    title="Statlog (German Credit Data), UCI",
    files=(FILE,),
    source_url="https://doi.org/10.24432/C5NC77 (UCI Machine Learning Repository, statlog/german)",
    license="CC BY 4.0 (as listed by UCI)",
    modalities=("tabular",),
    schema=SCHEMA,
    load=load,
)
