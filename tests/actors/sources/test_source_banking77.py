from __future__ import annotations

import json

import pytest

from actors.settings import DataSection
from actors.sources import DataFileError, load_source


@pytest.fixture(scope="module")
def table(load):
    return load("banking77")


def test_counts_labels_and_splits(table, data_root):
    table.check_reconciled()
    rows = table.rows
    assert table.n_read == 13083 and table.rejected.empty
    assert (rows["split"] != "test").sum() == 10003 and (rows["split"] == "test").sum() == 3080
    cats = json.loads((data_root / "banking77" / "categories.json").read_text())
    assert len(cats) == 77
    assert (rows["label"] == rows["category"].map({c: i for i, c in enumerate(cats)})).all()
    test = rows[rows["split"] == "test"]
    assert (test["label"].value_counts() == 40).all() and test["label"].nunique() == 77
    train = rows[rows["split"] != "test"]
    assert train.loc[train["category"] == "card_arrival"].shape[0] == 153
    assert 0.08 < (rows["split"] == "validation").sum() / 10003 < 0.12


def test_broken_copy(data_root, tmp_path, copy_tools):
    linked_copy, replace_file = copy_tools
    root = linked_copy(data_root, "banking77", tmp_path)
    replace_file(root, "banking77", "test.csv", b"text,category\r\nhi,card_arrival\r\nhello,not_a_category\r\n")
    t = load_source("banking77", DataSection(), root=root)
    t.check_reconciled()
    assert t.reject_counts() == {"category not in categories.json": 1}
    assert t.rejected["source"].tolist() == ["test.csv:3"]
    replace_file(root, "banking77", "test.csv", b"text,category\r\nhi,card_arrival\r\na,b,c\r\n")
    with pytest.raises(DataFileError, match="line 3"):
        load_source("banking77", DataSection(), root=root)
    replace_file(root, "banking77", "test.csv", b'text,category\r\n"unterminated,card_arrival\r\n')
    with pytest.raises(DataFileError, match="test.csv"):
        load_source("banking77", DataSection(), root=root)
