from __future__ import annotations

import numpy as np
import pytest

from actors.settings import DataSection
from actors.sources import DataFileError, load_source
from actors.sources.lending_club import ALLOWED_COLUMNS, build_text, clean_desc

LEAKAGE = ("total_pymnt", "total_rec_prncp", "total_rec_int", "recoveries", "collection_recovery_fee", "out_prncp",
           "last_pymnt_d", "last_pymnt_amnt", "last_credit_pull_d", "loan_status", "funded_amnt", "funded_amnt_inv",
           "total_rec_late_fee", "debt_settlement_flag", "issue_year")  # fmt: skip


@pytest.fixture(scope="module")
def table(load):
    return load("lending_club")


def test_counts_labels_and_time_split(table):
    table.check_reconciled()
    rows = table.rows
    assert table.n_read == 42535 and len(rows) == 42535 and table.rejected.empty
    assert rows["label"].value_counts().to_dict() == {0: 34116 + 1988, 1: 5670 + 761}
    counts = table.split_counts()
    assert counts["test"] == 21721  # loans issued in 2011
    assert counts["train"] + counts["validation"] == 42535 - 21721
    assert 0.08 < counts["validation"] / (counts["train"] + counts["validation"]) < 0.12
    assert (rows.loc[rows["split"] == "test", "issue_d"] >= "2011-01-01").all()
    assert (rows.loc[rows["split"] != "test", "issue_d"] < "2011-01-01").all()


def test_no_leakage_column(table, data_root):
    feature_cols = [c for c in table.rows.columns if c.startswith(("num__", "cat__"))]
    bases = {c.split("__", 1)[1] for c in feature_cols}
    assert bases <= set(ALLOWED_COLUMNS) | {"credit_history_months"}
    header = (data_root / "lending_club" / "lending_club_2007_2011.csv").open().readline().strip().split(",")
    for col in table.rows.columns:
        base = col.split("__", 1)[-1]
        assert base not in LEAKAGE, col
        if base in header:  # every column named after a source column must be an allowed one (issue_d: split only)
            assert base in ALLOWED_COLUMNS or base in ("issue_d", "id"), col  # id: ours (line number)
        assert not any(m in base for m in ("pymnt", "recover", "prncp", "total_rec_", "settlement", "hardship")), col
    assert "n/a" in set(table.rows["cat__emp_length"])  # a real category, not NaN


def test_text_is_cleaned(table):
    rows = table.rows
    assert not rows["desc"].str.contains("Borrower added on", case=False).any()
    assert not rows["text"].str.contains("<br", case=False).any()
    assert (rows["desc"] != "").sum() > 28000
    assert clean_desc("  Borrower added on 12/22/11 > I need it.<br>Borrower added on 1/3/12 > Thanks<br/> ") == (
        "I need it. Thanks"
    )
    assert build_text("d", "", "acme") == "employer: acme | description: d"
    months = rows["num__credit_history_months"]
    assert months.isna().sum() == 29 and (months.dropna() >= 0).all()


def test_validation_split_is_deterministic(table, data_root):
    again = load_source("lending_club", DataSection(max_rows_per_split=100), root=data_root)
    again.check_reconciled()
    assert again.n_sliced_out == 42535 - 300
    for split in ("train", "validation", "test"):
        a = again.rows.loc[again.rows["split"] == split, "id"].tolist()
        full = table.rows.loc[table.rows["split"] == split, "id"]
        assert a == full.iloc[np.linspace(0, len(full) - 1, 100).round().astype(int)].tolist()  # evenly spaced


def test_broken_rows_and_truncated_file(data_root, tmp_path, copy_tools):
    linked_copy, replace_file = copy_tools
    root = linked_copy(data_root, "lending_club", tmp_path)
    with open(data_root / "lending_club" / "lending_club_2007_2011.csv", encoding="utf-8") as f:
        lines = [next(f) for _ in range(31)]
    header = lines[0].rstrip("\n").split(",")
    i_issue = header.index("issue_d")
    fields = lines[3].rstrip("\n").split(",")
    if len(fields) == len(header):  # a row without quoted commas: blank out issue_d
        fields[i_issue] = "Dec-2011x"
        lines[3] = ",".join(fields) + "\n"
    lines[-1] = lines[-1][:40]  # truncated last record: no loan_status
    replace_file(root, "lending_club", "lending_club_2007_2011.csv", "".join(lines).encode())
    t = load_source("lending_club", DataSection(), root=root)
    t.check_reconciled()
    reasons = dict(zip(t.rejected["source_row"], t.rejected["reason"], strict=True))
    assert reasons[31] == "missing loan_status"
    if len(fields) == len(header):
        assert reasons[4] == "unparseable issue_d"
    replace_file(root, "lending_club", "lending_club_2007_2011.csv", b"a,b\n1,2\n")
    with pytest.raises(DataFileError, match="header lacks"):
        load_source("lending_club", DataSection(), root=root)
