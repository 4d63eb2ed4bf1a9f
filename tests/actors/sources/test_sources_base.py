from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from actors.settings import DATASET_NAMES, DataSection
from actors.sources import SOURCES, DataError, DataFileError, SourceTable, load_source
from actors.sources.base import MODALITIES, md5_bucket, rejected_frame, slice_per_split


def test_registry_follows_settings():
    assert tuple(SOURCES) == DATASET_NAMES
    for name, spec in SOURCES.items():
        assert spec.name == name
        assert set(spec.modalities) <= set(MODALITIES) and spec.modalities
        assert spec.files and spec.source_url.startswith("http") or "http" in spec.source_url
        assert spec.license and spec.title
        assert spec.schema.names[:3] == ["id", "split", "label"]
        assert spec.schema.field("label").type == pa.int64()


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown data set"):
        load_source("nope", DataSection())


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_missing_file_names_dataset_file_and_source(name, data_root, tmp_path, copy_tools):
    linked_copy, _ = copy_tools
    spec = SOURCES[name]
    missing = spec.required_files(data_root)[-1]
    root = linked_copy(data_root, name, tmp_path, skip=(missing,))
    with pytest.raises(DataFileError) as err:
        load_source(name, DataSection(), root=root)
    msg = str(err.value)
    assert name in msg and str(root / name / missing) in msg and spec.source_url in msg
    assert "not found" in msg
    assert err.value.dataset == name and err.value.path == root / name / missing


def test_md5_bucket_matches_eval_formula():
    import hashlib

    for t in ["", "abc", "中文", "Operating profit rose ."]:
        assert md5_bucket(t) == int(hashlib.md5(t.encode("utf-8")).hexdigest(), 16) % 10


def test_check_reconciled_detects_a_lost_row():
    rows = pd.DataFrame({"id": ["a", "b"], "split": ["train", "test"], "label": [0, 1]})
    rej = rejected_frame(pd.DataFrame({"x": [1.5]}), ["bad"], "f.csv", [7])
    SourceTable("x", rows, rej, [], n_read=3).check_reconciled()
    with pytest.raises(DataError, match="4 records read"):
        SourceTable("x", rows, rej, [], n_read=4).check_reconciled()
    with pytest.raises(DataError, match="duplicate ids"):
        SourceTable("x", rows.assign(id=["a", "a"]), rej, [], n_read=3).check_reconciled()
    assert rej.loc[0, "x"] == "1.5" and rej.loc[0, "source"] == "f.csv:7" and rej.loc[0, "source_row"] == 7


def test_slice_per_split_keeps_rows_evenly_spaced_through_each_split():
    rows = pd.DataFrame({"id": list("abcdefg"), "split": ["t", "v", "t", "t", "v", "t", "t"], "label": 0})
    kept, n_out = slice_per_split(rows, 2)
    # split t is a, c, d, f, g: its first and last row; split v (b, e) fits whole
    assert list(kept["id"]) == ["a", "b", "e", "g"] and n_out == 3
    kept, n_out = slice_per_split(rows, 3)
    assert list(kept["id"]) == ["a", "b", "d", "e", "g"] and n_out == 2
    assert slice_per_split(rows, None)[1] == 0


SMALL = ["german_credit", "financial_phrasebank", "fincuge_finfe", "fincuge_finnl", "banking77"]


@pytest.mark.parametrize("name", SMALL)
def test_max_rows_per_split(name, data_root):
    full = load_source(name, DataSection(), root=data_root)
    small = load_source(name, DataSection(max_rows_per_split=5), root=data_root)
    small.check_reconciled()
    assert set(small.split_counts().values()) == {5}
    assert small.n_sliced_out == len(full.rows) - len(small.rows)
    ends = full.rows.groupby("split", sort=False).nth([0, -1])  # evenly spaced: each split's first and last row
    assert set(ends["id"]) <= set(small.rows["id"])
    if name == "banking77":  # the file is sorted by intent: the slice spans five intents, not one
        assert small.rows.loc[small.rows["split"] == "train", "label"].nunique() == 5
