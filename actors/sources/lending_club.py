"""Lending Club loans issued 2007-2011: application-time tabular features + borrower free text.

Only the application-time columns that EVAL.md lists may reach a model (`ALLOWED_COLUMNS`); every payment,
recovery and `last_*` column is leakage and is never copied into `rows`.
"""

from __future__ import annotations

import html
import re
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
    md5_bucket,
    rejected_frame,
    slice_per_split,
)

NAME = "lending_club"
FILE = "lending_club_2007_2011.csv"
TEST_FROM = pd.Timestamp("2011-01-01")

ALLOWED_COLUMNS = (
    "loan_amnt", "term", "int_rate", "installment", "grade", "sub_grade", "emp_title", "emp_length",
    "home_ownership", "annual_inc", "verification_status", "purpose", "title", "desc", "zip_code", "addr_state",
    "dti", "delinq_2yrs", "earliest_cr_line", "inq_last_6mths", "mths_since_last_delinq", "mths_since_last_record",
    "open_acc", "pub_rec", "revol_bal", "revol_util", "total_acc", "pub_rec_bankruptcies",
)  # fmt: skip
"""EVAL.md's application-time columns: the only ones features may come from."""

NUMERIC = (
    "loan_amnt", "term", "int_rate", "installment", "annual_inc", "dti", "delinq_2yrs", "inq_last_6mths",
    "mths_since_last_delinq", "mths_since_last_record", "open_acc", "pub_rec", "revol_bal", "revol_util",
    "total_acc", "pub_rec_bankruptcies",
)  # fmt: skip
CATEGORICAL = (
    "grade", "sub_grade", "emp_length", "home_ownership", "verification_status", "purpose", "zip_code", "addr_state",
)  # fmt: skip
DERIVED_NUMERIC = ("credit_history_months",)
"""Months from `earliest_cr_line` to `issue_d` (the issue date is used only for this difference and the split)."""

LABELS = {
    "Fully Paid": 0,
    "Charged Off": 1,
    "Does not meet the credit policy. Status:Fully Paid": 0,
    "Does not meet the credit policy. Status:Charged Off": 1,
}

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
        raise SPEC.file_error(path, f"cannot parse as UTF-8 CSV: {e}") from e
    needed = set(ALLOWED_COLUMNS) | {"issue_d", "loan_status"}
    missing = sorted(needed - set(df.columns))
    if missing:
        raise SPEC.file_error(path, f"header lacks column(s) {missing}")
    source_row = np.arange(len(df), dtype="int64") + 2  # physical line number: the header is line 1

    issue = pd.to_datetime(df["issue_d"], format="%Y-%m-%d", errors="coerce")
    status = df["loan_status"]
    reason = pd.Series("", index=df.index, dtype="str")
    reason[~status.isin(list(LABELS))] = "loan_status is neither Fully Paid nor Charged Off"
    reason[status.isna()] = "missing loan_status"
    reason[issue.isna() & (reason == "")] = "unparseable issue_d"
    bad = (reason != "").to_numpy()

    ok = df[~bad]
    rows = pd.DataFrame({"source_row": source_row[~bad]})
    rows["id"] = [f"line{r}" for r in rows["source_row"]]
    rows["label"] = ok["loan_status"].map(LABELS).to_numpy().astype("int64")
    ok_issue = issue[~bad]
    for c in NUMERIC:
        rows[f"num__{c}"] = pd.to_numeric(ok[c], errors="coerce").to_numpy(dtype="float64")
    first_credit = pd.to_datetime(ok["earliest_cr_line"], format="%Y-%m-%d", errors="coerce")
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
    # md5(str(source_row)) bucket is 0, held out of train.
    is_test = (ok_issue >= TEST_FROM).to_numpy()
    is_val = np.array([md5_bucket(str(r)) == 0 for r in rows["source_row"]]) & ~is_test
    rows["split"] = np.where(is_test, "test", np.where(is_val, "validation", "train"))
    rows = conform(rows, SCHEMA)
    rows, n_sliced = slice_per_split(rows, settings.max_rows_per_split)
    rejected = rejected_frame(df[bad], reason[bad], FILE, source_row[bad])
    return SourceTable(NAME, rows, rejected, [path], n_read=len(df), n_sliced_out=n_sliced)


SPEC = SourceSpec(
    name=NAME,
    title="Lending Club accepted loans issued 2007-2011 (LoanStats3a, with borrower desc text)",
    files=(FILE,),
    source_url="https://github.com/kuhnrl30/LendingClubData (data published by LendingClub Corporation)",
    license="package MIT; loan data: Lending Club public download, no open-data licence",
    modalities=("tabular", "text"),
    schema=SCHEMA,
    load=load,
)
