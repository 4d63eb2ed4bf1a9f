from __future__ import annotations

import pytest

from actors.settings import DataSection
from actors.sources import DataFileError, load_source
from actors.sources.base import md5_bucket


@pytest.fixture(scope="module")
def table(load):
    return load("fincuge_finfe")


def test_counts_labels_and_splits(table):
    table.check_reconciled()
    rows = table.rows
    assert table.n_read == 16157 + 2020 and table.rejected.empty
    train = rows[rows["split"] != "test"]
    test = rows[rows["split"] == "test"]
    assert len(train) == 16157 and len(test) == 2020
    assert train["label"].value_counts().to_dict() == {2: 7324, 0: 4690, 1: 4143}
    assert test["label"].value_counts().to_dict() == {2: 886, 0: 574, 1: 560}
    assert (~test["seen_in_train"]).sum() == 923
    assert all((md5_bucket(t) == 0) == (s == "validation") for t, s in zip(train["text"], train["split"], strict=True))


def test_deterministic(table, data_root):
    assert load_source("fincuge_finfe", DataSection(), root=data_root).rows.equals(table.rows)


def test_broken_copy(data_root, tmp_path, copy_tools):
    linked_copy, replace_file = copy_tools
    root = linked_copy(data_root, "fincuge_finfe", tmp_path)
    replace_file(root, "fincuge_finfe", "eval_list.json", '[["好", 2], ["坏"], ["中", 7], [3, 1]]'.encode())
    t = load_source("fincuge_finfe", DataSection(), root=root)
    t.check_reconciled()
    assert t.split_counts()["test"] == 1 and list(t.rejected["source_row"]) == [2, 3, 4]
    assert t.rejected["source"].tolist() == ["eval_list.json:2", "eval_list.json:3", "eval_list.json:4"]
    good = (data_root / "fincuge_finfe" / "eval_list.json").read_bytes()
    replace_file(root, "fincuge_finfe", "eval_list.json", good[: len(good) // 2])
    with pytest.raises(DataFileError, match=r"invalid JSON at line 1, column \d+"):
        load_source("fincuge_finfe", DataSection(), root=root)
    replace_file(root, "fincuge_finfe", "eval_list.json", "[]".encode("utf-16"))
    with pytest.raises(DataFileError, match="not valid UTF-8"):
        load_source("fincuge_finfe", DataSection(), root=root)
