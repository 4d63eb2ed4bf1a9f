"""Split sizes read through the loaders match EVAL.md."""

import pandas as pd

from evaluation import evaluators as ev
from evaluation.data import load_rows


def test_german_five_stratified_folds(data_root):
    rows = load_rows("german_credit", data_root)
    assert len(rows) == 1000
    assert rows["split"].value_counts().to_dict() == {f"fold{k}": 200 for k in range(5)}
    assert rows.groupby("split")["label"].sum().tolist() == [60] * 5  # 300 bad, stratified


def test_lending_club_time_split(data_root):
    rows = load_rows("lending_club", data_root)
    test = rows[rows["split"] == "test"]
    assert (pd.to_datetime(test["issue_d"]) >= "2011-01-01").all()
    assert (pd.to_datetime(rows.loc[rows["split"] != "test", "issue_d"]) < "2011-01-01").all()
    assert not any(c.startswith(("total_pymnt", "recover", "last_")) for c in rows.columns)


def test_text_splits(data_root):
    pb = load_rows("financial_phrasebank", data_root)
    assert pb["split"].value_counts().to_dict() == {"train": 3397, "test": 975, "validation": 464}
    finfe = load_rows("fincuge_finfe", data_root)
    test = finfe[finfe["split"] == "test"]
    assert len(test) == 2020 and int((~test["seen_in_train"]).sum()) == ev.FINFE_UNSEEN_SIZE
    b77 = load_rows("banking77", data_root)
    counts = b77["split"].value_counts().to_dict()
    assert counts["test"] == 3080 and counts["train"] + counts["validation"] == 10003
    assert b77["label"].nunique() == 77


def test_stocknet_test_size(data_root):
    rows = load_rows("stocknet", data_root)
    assert int((rows["split"] == "test").sum()) == ev.STOCKNET_TEST_SIZE
    test_dates = rows.loc[rows["split"] == "test", "date"]
    assert test_dates.min() >= "2015-10-01" and test_dates.max() < "2016-01-01"
