from __future__ import annotations

import pytest

from actors.settings import DataSection
from actors.sources import DataFileError, load_source
from actors.sources.base import md5_bucket


@pytest.fixture(scope="module")
def table(load):
    return load("financial_phrasebank")


def test_counts_and_dedup(table):
    table.check_reconciled()
    assert table.n_read == 4846
    assert table.reject_counts() == {"duplicate sentence": 6, "sentence occurs with conflicting labels": 4}
    assert len(table.rows) == 4836 and table.rows["text"].is_unique
    assert table.rows["label"].value_counts().to_dict() == {1: 2871, 2: 1361, 0: 604}  # minus the 10 rejected


def test_hash_split_and_all_agree(table):
    for text, split in zip(table.rows["text"], table.rows["split"], strict=True):
        b = md5_bucket(text)
        assert split == ("test" if b < 2 else "validation" if b == 2 else "train")
    assert table.split_counts() == {"test": 975, "train": 3397, "validation": 464}
    assert 2200 < table.rows["all_agree"].sum() <= 2264
    assert table.rows["text"].str.contains("ä").any()  # latin-1 decoded


def test_broken_copy(data_root, tmp_path, copy_tools):
    linked_copy, replace_file = copy_tools
    root = linked_copy(data_root, "financial_phrasebank", tmp_path)
    raw = (data_root / "financial_phrasebank" / "Sentences_50Agree.txt").read_bytes().split(b"\r\n")
    raw[2] = "Sales in Espoo fell without a label".encode("latin-1")
    raw[3] = raw[3].rsplit(b"@", 1)[0] + b"@meh"
    replace_file(root, "financial_phrasebank", "Sentences_50Agree.txt", b"\r\n".join(raw))
    t = load_source("financial_phrasebank", DataSection(), root=root)
    t.check_reconciled()
    by_line = dict(zip(t.rejected["source_row"], t.rejected["reason"], strict=True))
    assert by_line[3] == "line has no '@' before the label" and by_line[4] == "unknown label 'meh'"
    assert set(t.rejected.columns) >= {"line", "reason", "source", "source_row"}
    utf8 = (data_root / "financial_phrasebank" / "Sentences_50Agree.txt").read_bytes().decode("latin-1").encode()
    replace_file(root, "financial_phrasebank", "Sentences_50Agree.txt", utf8)
    with pytest.raises(DataFileError, match="UTF-8-encoded"):
        load_source("financial_phrasebank", DataSection(), root=root)
