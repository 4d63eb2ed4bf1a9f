"""Lending Club loans issued 2007-2011: application-time tabular features + borrower free text.

Declared in builtin.yaml (`parser: lending_club`): the file, the numeric, categorical and text columns, the
label coding and the time split come from there. The CSV itself is plain; what needs Python is what EVAL.md
asks of its columns: `desc` cleaned of the `Borrower added on MM/DD/YY >` prefixes and `<br>` tags (their dates
give the loan's year away), the text built as `title: .. | employer: .. | description: ..`, and the derived
`num__credit_history_months`; plus the historic ids (`line<N>`) and validation hash (of the line number) and
row layout, kept so that prepared shards do not change.

Only the application-time columns that EVAL.md lists may reach a model (`ALLOWED_COLUMNS`, checked against the
declaration); every payment, recovery and `last_*` column is leakage and is never copied into `rows`.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from actors.settings import DataSection
from actors.sources.base import SourceTable, conform, core_fields, md5_bucket, rejected_frame, slice_per_split
from actors.sources.builtin import Parser, builtin_declaration, file_error
from actors.sources.rules import generated_id, label_index

NAME = "lending_club"
DECL = builtin_declaration(NAME)
FILE = DECL.files[0]
SPLIT = DECL.split
TEST_FROM = pd.Timestamp(SPLIT.test_from)

ALLOWED_COLUMNS = (
    "loan_amnt", "term", "int_rate", "installment", "grade", "sub_grade", "emp_title", "emp_length",
    "home_ownership", "annual_inc", "verification_status", "purpose", "title", "desc", "zip_code", "addr_state",
    "dti", "delinq_2yrs", "earliest_cr_line", "inq_last_6mths", "mths_since_last_delinq", "mths_since_last_record",
    "open_acc", "pub_rec", "revol_bal", "revol_util", "total_acc", "pub_rec_bankruptcies",
)  # fmt: skip
"""EVAL.md's application-time columns: the only ones features may come from."""

NUMERIC = tuple(DECL.numeric)
CATEGORICAL = tuple(DECL.categorical)
TEXT = ("title", "emp_title", "desc")
"""The text columns `build_text` joins, in its order."""
HISTORY_FROM = DECL.options["history_from"]
DERIVED_NUMERIC = ("credit_history_months",)
"""Months from `earliest_cr_line` to `issue_d` (the issue date is used only for this difference and the split)."""
LEAKS = sorted(set(NUMERIC + CATEGORICAL + tuple(DECL.text) + (HISTORY_FROM,)) - set(ALLOWED_COLUMNS))
assert not LEAKS, f"builtin.yaml lending_club names columns outside EVAL.md's application-time list: {LEAKS}"
assert tuple(DECL.text) == TEXT, f"builtin.yaml lending_club: text must be {list(TEXT)} (build_text's parts)"
LABEL = DECL.label.column
LABELS = label_index(DECL.label)

_BORROWER_ADDED = re.compile(r"(?:Borrower|\b\d{3,})\s+added on \d{1,2}/\d{1,2}/\d{2,4}\s*(?:>|-)?", re.IGNORECASE)
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_WS = re.compile(r"\s+")

SCHEMA = pa.schema(
    core_fields()
    + [pa.field("text", pa.string())]
    + [pa.field(f"num__{c}", pa.float64()) for c in NUMERIC + DERIVED_NUMERIC]
    + [pa.field(f"cat__{c}", pa.string()) for c in CATEGORICAL]
    + [pa.field(c, pa.string()) for c in ("desc", "title", "emp_title", "issue_d")]
    + [pa.field("source_row", pa.int64())]
)


def clean_desc(desc: object) -> str:
    """Strip every `Borrower added on MM/DD/YY >` prefix (also written with `&gt;` or `-`) and `<br>` tag (their
    dates give the year away), decode HTML entities (`&amp;`...) and normalise whitespace. Missing → ""."""
    if not isinstance(desc, str):
        return ""
    text = _BR.sub(" ", html.unescape(desc))
    return _WS.sub(" ", _BORROWER_ADDED.sub(" ", text)).strip()


def _clean(value: object) -> str:
    return _WS.sub(" ", value).strip() if isinstance(value, str) else ""


def build_text(desc: str, title: str, emp_title: str) -> str:
    """`title: <title> | employer: <emp_title> | description: <desc>`, leaving out empty parts.

    The short fields come first so that truncating to the token limit cuts the long description, not them."""
    parts = [(k, v) for k, v in (("title", title), ("employer", emp_title), ("description", desc)) if v]
    return " | ".join(f"{k}: {v}" for k, v in parts)


def load(root: Path, settings: DataSection) -> SourceTable:
    path = root / NAME / FILE
    try:
        df = pd.read_csv(path, low_memory=False, keep_default_na=False, na_values=[""], dtype=str)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise file_error(NAME, path, f"cannot parse as UTF-8 CSV: {e}") from e
    needed = set(ALLOWED_COLUMNS) | {SPLIT.column, LABEL}
    missing = sorted(needed - set(df.columns))
    if missing:
        raise file_error(NAME, path, f"header lacks column(s) {missing}")
    source_row = np.arange(len(df), dtype="int64") + 2  # physical line number: the header is line 1

    issue = pd.to_datetime(df[SPLIT.column], format=SPLIT.format, errors="coerce")
    status = df[LABEL]
    reason = pd.Series("", index=df.index, dtype="str")
    reason[~status.isin(list(LABELS))] = f"{LABEL} is neither Fully Paid nor Charged Off"
    reason[status.isna()] = f"missing {LABEL}"
    reason[issue.isna() & (reason == "")] = f"unparseable {SPLIT.column}"
    bad = (reason != "").to_numpy()

    ok = df[~bad]
    rows = pd.DataFrame({"source_row": source_row[~bad]})
    rows["id"] = [generated_id(DECL.id_format, FILE, r) for r in rows["source_row"]]
    rows["label"] = ok[LABEL].map(LABELS).to_numpy().astype("int64")
    ok_issue = issue[~bad]
    for c in NUMERIC:
        rows[f"num__{c}"] = pd.to_numeric(ok[c], errors="coerce").to_numpy(dtype="float64")
    first_credit = pd.to_datetime(ok[HISTORY_FROM], format=SPLIT.format, errors="coerce")
    months = (ok_issue.dt.year - first_credit.dt.year) * 12 + (ok_issue.dt.month - first_credit.dt.month)
    rows["num__credit_history_months"] = months.to_numpy(dtype="float64")
    for c in CATEGORICAL:
        rows[f"cat__{c}"] = ok[c].to_numpy()
    rows["desc"] = [clean_desc(v) for v in ok["desc"]]
    rows["title"] = [_clean(v) for v in ok["title"]]
    rows["emp_title"] = [_clean(v) for v in ok["emp_title"]]
    rows["text"] = [build_text(d, t, e) for d, t, e in zip(rows["desc"], rows["title"], rows["emp_title"], strict=True)]
    rows["issue_d"] = ok_issue.dt.strftime("%Y-%m-%d").to_numpy()
    # EVAL.md: train before 2011-01-01, test from then on. Validation (for model selection): the train rows whose
    # md5(str(source_row)) bucket is below validation_buckets (1: bucket 0), held out of train.
    is_test = (ok_issue >= TEST_FROM).to_numpy()
    is_val = np.array([md5_bucket(str(r)) < SPLIT.validation_buckets for r in rows["source_row"]]) & ~is_test
    rows["split"] = np.where(is_test, "test", np.where(is_val, "validation", "train"))
    rows = conform(rows, SCHEMA)
    rows, n_sliced = slice_per_split(rows, settings.max_rows_per_split)
    rejected = rejected_frame(df[bad], reason[bad], FILE, source_row[bad])
    return SourceTable(NAME, rows, rejected, [path], n_read=len(df), n_sliced_out=n_sliced)


PARSER = Parser(load=load, schema=SCHEMA)
