"""The Ray Data pipeline on a 50-row-per-split slice of every data set, on the session's local cluster."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import actors.sources as sources
from actors.manifest import ReconcileError, read_manifest
from actors.pipeline import prepare, read_prepared
from actors.settings import DATASET_NAMES, DataSection

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def prepared(ray_cluster, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    settings = DataSection(max_rows_per_split=50, output_dir=out)
    stages: list[tuple[str, str]] = []
    summaries = prepare(settings, progress=lambda dataset, stage: stages.append((dataset, stage)))
    return out, {s.dataset: s for s in summaries}, stages


def _parquet_rows(folder) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in folder.glob("*.parquet"))


def test_every_dataset_written_and_reconciled(prepared):
    out, summaries, stages = prepared
    assert list(summaries) == list(DATASET_NAMES)
    assert ("stocknet", "done") in stages
    assert (out / "tokenizer.json").is_file()
    for name, summary in summaries.items():
        manifest = read_manifest(out, name)
        assert manifest["splits"] == summary.splits and summary.n_written > 0
        for split, n in manifest["splits"].items():
            assert 0 < n <= 50
            assert _parquet_rows(out / name / split) == n, (name, split)
        rejected = pd.read_parquet(out / name / "rejected.parquet")
        assert len(rejected) == manifest["n_rejected"] == summary.n_rejected
        assert rejected["reason"].notna().all()
        assert manifest["n_read"] == manifest["n_written"] + manifest["n_rejected"] + manifest["n_sliced_out"]
        assert len(manifest["source_files"]) >= 1 and len(manifest["source_files"][0]["sha256"]) == 64
        assert manifest["settings"]["max_rows_per_split"] == 50
        assert not (out / f".{name}.partial").exists()
    assert set(read_manifest(out, "german_credit")["splits"]) == {f"fold{i}" for i in range(5)}
    assert read_manifest(out, "financial_phrasebank")["rejected"]  # the loader's duplicate sentences


def test_output_columns_and_types(prepared):
    out, _, _ = prepared
    manifest = read_manifest(out, "stocknet")
    types = {f["name"]: f["type"] for f in manifest["schema"]}
    assert types["input_ids"] == "list<element: int32>"
    assert types["pixel_values"] == "list<element: float>" and types["series_mask"] == "list<element: bool>"
    assert "image" not in types and "series" not in types and "text" in types
    assert manifest["shapes"] == {"pixel_values": [3, 64, 64], "series_values": [5, 5], "series_mask": [5]}
    row = pd.read_parquet(out / "stocknet" / "test").iloc[0]
    assert len(row["pixel_values"]) == 3 * 64 * 64 and len(row["series_values"]) == 25
    assert row["input_ids"][0] == 101 and row["input_ids"][-1] == 102

    lending = read_manifest(out, "lending_club")
    tab = lending["state"]["tabular"]
    assert tab["fitted_on"] == "train" and tab["feature_names"]
    df = pd.read_parquet(out / "lending_club" / "train")
    assert len(df["tab_numeric"].iloc[0]) == len(tab["numeric_columns"])
    assert len(df["tab_categorical"].iloc[0]) == len(tab["categorical_columns"])
    assert lending["state"]["text"]["added_tokens"] > 0


def test_unk_rates_reported_and_finfe_improves(prepared):
    out, summaries, _ = prepared
    finfe = summaries["fincuge_finfe"].unk_rates
    assert finfe["base"] > 0.5 and finfe["extended"] < finfe["base"] / 2  # even from 50 train rows per set
    assert summaries["banking77"].unk_rates["base"] < 0.01
    assert read_manifest(out, "fincuge_finfe")["state"]["text"]["unk_rates"] == finfe


def test_read_prepared(prepared):
    out, summaries, _ = prepared
    ds = read_prepared(out, "banking77", "test")
    assert ds.count() == summaries["banking77"].splits["test"]
    with pytest.raises(FileNotFoundError):
        read_prepared(out, "banking77", "nope")


def test_progress_accepts_a_rich_progress():
    from rich.progress import Progress

    from actors.pipeline import _progress_fn

    with Progress(disable=True) as bar:
        report = _progress_fn(bar)
        report("banking77", "load")
        report("banking77", "done")
        (task,) = bar.tasks
        assert task.description == "banking77: done" and task.finished


def _injecting(monkeypatch, extra: dict, bump_n_read: bool = True):
    """Wrap load_source so that `extra[name](rows)` adds hand-made rows to that data set."""
    real = sources.load_source

    def load(name, settings, root=None):
        table = real(name, settings, root)
        if name in extra:
            added = extra[name](table.rows)
            table.rows = pd.concat([table.rows, added], ignore_index=True)
            table.n_read += len(added) if bump_n_read else 0
        return table

    monkeypatch.setattr(sources, "load_source", load)


def test_injected_bad_rows_end_up_rejected(ray_cluster, tmp_path, monkeypatch):
    def bad_stocknet(rows):
        bad = rows.iloc[:2].copy()
        bad["id"] = ["bad-image", "bad-series"]
        bad["image"] = [b"\x89PNG\r\n\x1a\n" + b"\0" * 40, bad["image"].iloc[1]]
        bad["series"] = [bad["series"].iloc[0], [[np.nan] * 5] * 6]
        return bad

    def bad_phrasebank(rows):
        bad = rows.iloc[:1].copy()
        bad["id"], bad["text"] = ["empty-text"], ["   "]
        return bad

    _injecting(monkeypatch, {"stocknet": bad_stocknet, "financial_phrasebank": bad_phrasebank})
    settings = DataSection(max_rows_per_split=5, output_dir=tmp_path)
    summaries = prepare(settings, ["financial_phrasebank", "stocknet"], vocab_datasets=["financial_phrasebank"])
    rejected = pd.concat(
        [pd.read_parquet(tmp_path / n / "rejected.parquet") for n in ("financial_phrasebank", "stocknet")]
    ).set_index("id")
    assert rejected.loc["empty-text", "reason"] == "empty text"
    assert rejected.loc["bad-image", "reason"] == "corrupt image"
    assert rejected.loc["bad-series", "reason"] == "no valid price bars"
    assert set(rejected.loc[["empty-text", "bad-image"], "stage"]) == {"preprocess"}
    assert json.loads(rejected.loc["empty-text", "record"]) == {"text": "   "}
    assert summaries[1].rejected["corrupt image"] == 1
    written = pd.read_parquet(tmp_path / "stocknet" / "train")
    assert not written["id"].isin(["bad-image", "bad-series"]).any()


def test_unreconciled_counts_raise_and_keep_previous_output(ray_cluster, tmp_path, monkeypatch):
    settings = DataSection(max_rows_per_split=5, output_dir=tmp_path)
    prepare(settings, ["banking77"])
    before = read_manifest(tmp_path, "banking77")["created"]
    _injecting(monkeypatch, {"banking77": lambda rows: rows.iloc[:1].assign(id="ghost")}, bump_n_read=False)
    with pytest.raises(ReconcileError, match="banking77"):
        prepare(settings, ["banking77"], vocab_datasets=["banking77"])
    assert read_manifest(tmp_path, "banking77")["created"] == before
