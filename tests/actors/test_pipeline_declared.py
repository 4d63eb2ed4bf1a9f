"""`prepare` on declared data sets (the real-data slices of tests/actors/sources/data/), on the session's Ray
cluster: shards per split, the manifest's counts and classes, rejected rows with their reasons, reconciliation."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from actors.manifest import read_manifest
from actors.pipeline import prepare
from actors.settings import DataSection
from actors.sources import DeclarationError, load_source

pytestmark = pytest.mark.timeout(300)

DATA = Path(__file__).parent / "sources" / "data"
DECLARED = {
    "own_loans": {
        "files": ["loans.csv"], "read": {"delimiter": ";"}, "text": ["loan_title", "notes"],
        "numeric": ["amount", "interest_rate", "income", "debt_to_income"],
        "categorical": ["term_months", "grade", "home", "purpose", "state"], "id": "application_id",
        "label": {"column": "status", "classes": {"Fully Paid": "repaid", "Charged Off": "default"},
                  "positive": "default"},
        "split": {"kind": "time", "column": "issued", "test_from": "2011-01-01"},
    },
    "own_intents": {"files": ["queries.jsonl"], "text": ["query"], "label": {"column": "intent"},
                    "split": {"kind": "hash", "buckets": 10, "test": [0, 1], "validation": [2]}},
}


def test_prepare_writes_declared_data_sets_like_builtins(ray_cluster, tmp_path):
    settings = DataSection(root=DATA, output_dir=tmp_path, declared=DECLARED, datasets=list(DECLARED))
    summaries = {s.dataset: s for s in prepare(settings, vocab_datasets=[])}
    assert list(summaries) == list(DECLARED)
    for name in DECLARED:
        source = load_source(name, settings)
        manifest = read_manifest(tmp_path, name)
        assert manifest["splits"] == source.split_counts() == summaries[name].splits
        assert manifest["classes"] == source.classes
        assert manifest["n_read"] == manifest["n_written"] + manifest["n_rejected"] + manifest["n_sliced_out"]
        assert manifest["source_url"] == f"declared in data.declared.{name}"
        for split, n in manifest["splits"].items():
            shard = pd.read_parquet(tmp_path / name / split)
            assert len(shard) == n and (shard["split"] == split).all()
            assert shard["input_ids"].map(len).min() >= 2
    loans = read_manifest(tmp_path, "own_loans")
    assert loans["modalities"] == ["tabular", "text"]
    assert loans["state"]["tabular"]["numeric_columns"] == [f"num__{c}" for c in DECLARED["own_loans"]["numeric"]]
    rejected = pq.read_table(tmp_path / "own_loans" / "rejected.parquet").to_pandas()
    assert len(rejected) == loans["n_rejected"] > 0
    assert set(rejected["reason"]) == {"label value not in label.classes (column 'status')"}
    assert rejected["record"].str.contains("Does not meet the credit policy").all()
    train = pd.read_parquet(tmp_path / "own_loans" / "train")
    assert len(train["tab_numeric"].iloc[0]) == 4 and len(train["tab_categorical"].iloc[0]) == 5


def test_a_bad_declaration_fails_before_any_work(tmp_path):
    """Before the vocabulary corpora (every built-in text data set) are read, and with nothing written."""
    bad = DECLARED["own_loans"] | {"numeric": ["amount", "incme"]}
    settings = DataSection(root=DATA, output_dir=tmp_path / "out", declared={"own_loans": bad})
    with pytest.raises(DeclarationError, match="column 'incme' is not in loans.csv") as info:
        prepare(settings, ["own_loans"])
    assert "did you mean 'income'?" in info.value.fix
    assert not (tmp_path / "out" / "tokenizer.json").exists()
