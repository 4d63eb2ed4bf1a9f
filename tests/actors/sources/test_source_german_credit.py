from __future__ import annotations

import numpy as np
import pytest

from actors.settings import DataSection
from actors.sources import load_source
from actors.sources.german_credit import CAT_COLS, NUM_COLS


@pytest.fixture(scope="module")
def table(load):
    return load("german_credit")


def test_counts_labels_and_columns(table):
    table.check_reconciled()
    assert table.n_read == 1000 and len(table.rows) == 1000 and table.rejected.empty
    assert table.rows["label"].value_counts().to_dict() == {0: 700, 1: 300}  # positive = bad (class 2)
    assert len(CAT_COLS) == 13 and len(NUM_COLS) == 7
    assert "text" not in table.rows
    assert table.rows["cat__checking_status"].iloc[0] == "A11"
    assert table.rows["num__duration_months"].iloc[0] == 6.0 and table.rows["num__age_years"].iloc[0] == 67.0
    assert all(table.rows[c].dtype == np.float64 for c in NUM_COLS)


def test_five_stratified_folds_match_sklearn(table):
    from sklearn.model_selection import StratifiedKFold

    counts = table.rows.groupby("split")["label"].agg(["size", "sum"])
    assert list(counts.index) == [f"fold{k}" for k in range(5)]
    assert (counts["size"] == 200).all() and (counts["sum"] == 60).all()
    y = table.rows["label"].to_numpy()
    for k, (_, test) in enumerate(StratifiedKFold(5, shuffle=True, random_state=0).split(y, y)):
        assert (table.rows["split"].to_numpy()[test] == f"fold{k}").all()


def test_deterministic(table, data_root):
    again = load_source("german_credit", DataSection(), root=data_root)
    assert again.rows.equals(table.rows)


def test_malformed_line_is_rejected(data_root, tmp_path, copy_tools):
    linked_copy, replace_file = copy_tools
    root = linked_copy(data_root, "german_credit", tmp_path)
    lines = (data_root / "german_credit" / "german.data").read_text().splitlines()
    lines[4] = lines[4].rsplit(" ", 1)[0]  # drop the class
    lines[9] = lines[9][:-1] + "3"  # bad class
    replace_file(root, "german_credit", "german.data", ("\n".join(lines) + "\n").encode())
    t = load_source("german_credit", DataSection(), root=root)
    t.check_reconciled()
    assert len(t.rows) == 998 and list(t.rejected["source_row"]) == [5, 10]
    assert "expected 21" in t.rejected["reason"].iloc[0] and "not 1 or 2" in t.rejected["reason"].iloc[1]
