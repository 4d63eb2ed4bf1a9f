from __future__ import annotations

import csv
import json
from collections import Counter

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
    with open(data_root / "banking77" / "train.csv", encoding="utf-8", newline="") as fh:
        in_file = Counter(row["category"] for row in csv.DictReader(fh))  # counted apart from the loader
    assert train["category"].value_counts().to_dict() == dict(in_file)
    assert 0.08 < (rows["split"] == "validation").sum() / 10003 < 0.12


def test_broken_copy(data_root, tmp_path, copy_tools):
    linked_copy, replace_file = copy_tools
    root = linked_copy(data_root, "banking77", tmp_path)
    intent = json.loads((data_root / "banking77" / "categories.json").read_text())[0]
    replace_file(root, "banking77", "test.csv", f"text,category\r\nhi,{intent}\r\nhello,not_a_category\r\n".encode())
    t = load_source("banking77", DataSection(), root=root)
    t.check_reconciled()
    assert t.reject_counts() == {"label value not in categories.json (column 'category')": 1}  # the generic loader's
    assert t.rejected["source"].tolist() == ["test.csv:3"]
    replace_file(root, "banking77", "test.csv", f"text,category\r\nhi,{intent}\r\na,b,c\r\n".encode())
    with pytest.raises(DataFileError, match="line 3"):
        load_source("banking77", DataSection(), root=root)
    replace_file(root, "banking77", "test.csv", f'text,category\r\n"unterminated,{intent}\r\n'.encode())
    with pytest.raises(DataFileError, match="test.csv"):
        load_source("banking77", DataSection(), root=root)
