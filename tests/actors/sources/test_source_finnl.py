from __future__ import annotations

import pytest

from actors.sources.finnl import CLASSES, clean_topics


@pytest.fixture(scope="module")
def table(load):
    return load("fincuge_finnl")


def test_counts_and_unlabelled(table):
    table.check_reconciled()
    assert table.split_counts() == {"test": 884, "train": 7071} and table.rejected.empty
    assert (table.rows["label"] == -1).all()
    tokens = {t for s in table.rows["topics"] for t in s.split()}
    assert tokens <= set(CLASSES)
    train_topics = table.rows.loc[table.rows["split"] == "train", "topics"]
    assert sum("中国" in s.split() for s in train_topics) == 3920


def test_clean_topics():
    assert clean_topics(" 外国  公司 ") == "外国 公司"
    assert clean_topics("中国大盘 虚拟火币 大盘") == "大盘"
