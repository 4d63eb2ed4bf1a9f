"""finmm_eval on a tiny (untrained) bundle and hand-written prepared shards: the real inference path
(pyarrow shards -> collate with the bundle's layout -> FinMMForTask -> evaluators), no training."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from actors.collate import BatchLayout
from evaluation.data import load_rows
from evaluation.finmm_eval import evaluate_bundle, predict, read_split
from model.bundle import save_bundle
from model.dummy import tiny_config
from model.task import FinMMForTask

N = 40


def _write_text_shards(output_dir, dataset, ids, labels, rng):
    folder = output_dir / dataset / "test"
    folder.mkdir(parents=True)
    lengths = rng.integers(3, 12, len(ids))
    input_ids = [[101, *rng.integers(1000, 2000, n - 2).tolist(), 102] for n in lengths]
    table = pa.table({
        "id": pa.array(ids, pa.string()), "label": pa.array(labels, pa.int64()),
        "input_ids": pa.array(input_ids, pa.list_(pa.int32())),
        "attention_mask": pa.array([[1] * len(x) for x in input_ids], pa.list_(pa.int8())),
    })  # fmt: skip
    pq.write_table(table, folder / "part-0.parquet")
    (output_dir / dataset / "manifest.json").write_text(json.dumps({"modalities": ["text"]}))


@pytest.fixture
def bundle(tmp_path):
    model = FinMMForTask(tiny_config(heads={"sentiment": {}})).eval()
    layout = BatchLayout(image_size=16)
    return save_bundle(tmp_path / "bundle", model, preprocessing_state={"layout": layout.to_dict()})


def test_evaluate_bundle_on_sentiment(tmp_path, bundle, data_root):
    rng = np.random.default_rng(0)
    output_dir = tmp_path / "data"
    for dataset in ("financial_phrasebank", "fincuge_finfe"):
        test = load_rows(dataset, data_root, max_rows=N)
        test = test[test["split"] == "test"]
        _write_text_shards(output_dir, dataset, test["id"].tolist(), test["label"].tolist(), rng)
    out = evaluate_bundle(bundle, "sentiment", output_dir, data_root, max_rows=N)
    pb = out["financial_phrasebank"]
    assert pb["n_scored"] == N and pb["figures"]["test"]["n"] == N
    assert 0.0 <= pb["figures"]["test"]["accuracy"] <= 1.0
    assert pb["_predictions"].shape == (N, 3)
    np.testing.assert_allclose(pb["_predictions"].sum(axis=1), 1.0, rtol=1e-5)
    assert out["fincuge_finfe"]["figures"]["unseen"]["n"] <= N


def test_length_sorted_batches_keep_each_prediction_with_its_row(tmp_path, bundle, data_root):
    """`predict` batches rows by text length and answers in table order: row i's probabilities equal row i
    scored on its own (callers such as the smoke finetunes align predictions with labels by position)."""
    from model.bundle import load_bundle

    rng = np.random.default_rng(1)
    test = load_rows("financial_phrasebank", data_root, max_rows=N)
    test = test[test["split"] == "test"]
    _write_text_shards(tmp_path / "data", "financial_phrasebank", test["id"].tolist(), test["label"].tolist(), rng)
    table = read_split(tmp_path / "data", "financial_phrasebank", "test")
    model = load_bundle(bundle).model
    with torch.no_grad():  # at its init scale an untrained model answers every row alike: widen the weights
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.2, generator=torch.Generator().manual_seed(p.numel()))
    layout = BatchLayout(image_size=16)
    together = predict(model, "sentiment", table, layout, None, batch_size=8)
    ids = table["id"].to_pylist()
    assert list(together.index) == ids  # the table's order, although the batches ran by length
    alone = pd.DataFrame([predict(model, "sentiment", table.slice(i, 1), layout, None).iloc[0] for i in range(N)],
                         index=ids)
    assert alone.std().max() > 0.05  # the rows' answers differ, so a misplaced prediction would show
    np.testing.assert_allclose(together.to_numpy(), alone.to_numpy(), atol=2e-2)


def test_dropping_the_only_modality_is_refused(tmp_path, bundle):
    from model.bundle import load_bundle

    rng = np.random.default_rng(1)
    _write_text_shards(tmp_path, "financial_phrasebank", ["a", "b"], [0, 1], rng)
    table = read_split(tmp_path, "financial_phrasebank", "test")
    b = load_bundle(bundle)
    layout = BatchLayout.from_dict(b.preprocessing_state["layout"])
    assert predict(b.model, "sentiment", table, layout, None).shape == (2, 3)
    with pytest.raises(ValueError, match="leaves no modality"):
        predict(b.model, "sentiment", table, layout, None, drop=("text",))


def _bundle_with_layout(folder, heads, layout):
    config = tiny_config(heads=heads, tabular=layout.tabular_schema())
    model = FinMMForTask(config).eval()
    return save_bundle(folder, model, preprocessing_state={"layout": layout.to_dict()})


def test_credit_risk_text_ablation_and_reason_codes(tmp_path, data_root):
    from actors.collate import TabularBlock

    layout = BatchLayout(image_size=16, tabular=[TabularBlock("lending_club", ["a", "b", "c"], ["g", "h"], [5, 3])])
    bundle = _bundle_with_layout(tmp_path / "bundle", {"credit_risk": {}}, layout)
    rows = load_rows("lending_club", data_root, max_rows=N)
    test = rows[rows["split"] == "test"]
    rng = np.random.default_rng(2)
    folder = tmp_path / "data" / "lending_club" / "test"
    folder.mkdir(parents=True)
    ids = [[101, *rng.integers(1000, 2000, 5).tolist(), 102] for _ in range(len(test))]
    pq.write_table(pa.table({
        "id": test["id"].tolist(), "label": test["label"].tolist(),
        "input_ids": pa.array(ids, pa.list_(pa.int32())), "attention_mask": pa.array([[1] * 7] * len(test),
                                                                                     pa.list_(pa.int8())),
        "tab_numeric": pa.array(rng.normal(size=(len(test), 3)).tolist(), pa.list_(pa.float32())),
        "tab_numeric_missing": pa.array([[False] * 3] * len(test), pa.list_(pa.bool_())),
        "tab_categorical": pa.array(rng.integers(0, 3, (len(test), 2)).tolist(), pa.list_(pa.int32())),
    }), folder / "part-0.parquet")  # fmt: skip
    (tmp_path / "data" / "lending_club" / "manifest.json").write_text(json.dumps({"modalities": ["tabular", "text"]}))
    out = evaluate_bundle(bundle, "credit_risk", tmp_path / "data", data_root)["lending_club"]
    figures = out["figures"]
    assert {"tabular", "tabular_text"} <= set(figures) and figures["tabular_text"]["n"] == len(test)
    assert len(figures["tabular_text"]["reliability"]) >= 1
    assert len(out["reason_codes"]) == 5
    for item in out["reason_codes"]:
        assert all(c["feature"].startswith("lending_club.") and c["attribution"] > 0 for c in item["reason_codes"])
    # without the ablation pass (the demo): one pass, the same tabular + text figures, no tabular-only entry
    once = evaluate_bundle(bundle, "credit_risk", tmp_path / "data", data_root, ablations=False)["lending_club"]
    assert set(once["figures"]) & {"tabular", "tabular_text"} == {"tabular_text"} and "ablation_note" not in once
    assert once["figures"]["tabular_text"]["auc"] == figures["tabular_text"]["auc"]


def test_stock_movement_modality_ablations(tmp_path, data_root, monkeypatch):
    layout = BatchLayout(image_size=16, series_days=5)
    bundle = _bundle_with_layout(tmp_path / "bundle", {"stock_movement": {}}, layout)
    from finmm.evaluate_command import QUICK_ROWS

    rows = load_rows("stocknet", data_root, max_rows=QUICK_ROWS)  # the rows a quick evaluate scores
    test = rows[rows["split"] == "test"].head(N)
    rng = np.random.default_rng(3)
    folder = tmp_path / "data" / "stocknet" / "test"
    folder.mkdir(parents=True)
    n = len(test)
    pq.write_table(pa.table({
        "id": test["id"].tolist(), "label": test["label"].tolist(),
        "input_ids": pa.array([[101, 1500, 102]] * n, pa.list_(pa.int32())),
        "attention_mask": pa.array([[1, 1, 1]] * n, pa.list_(pa.int8())),
        "pixel_values": pa.array(rng.normal(size=(n, 3 * 16 * 16)).tolist(), pa.list_(pa.float32())),
        "series_values": pa.array(rng.normal(scale=0.01, size=(n, 25)).tolist(), pa.list_(pa.float32())),
        "series_mask": pa.array([[True] * 5] * n, pa.list_(pa.bool_())),
    }), folder / "part-0.parquet")  # fmt: skip
    (tmp_path / "data" / "stocknet" / "manifest.json").write_text(
        json.dumps({"modalities": ["text", "series", "image"]}))
    out = evaluate_bundle(bundle, "stock_movement", tmp_path / "data", data_root, max_rows=QUICK_ROWS)["stocknet"]
    assert out["figures"]["n_test"] == n
    assert set(out["ablations"]) == {"without_text", "without_image", "without_series"}
    assert all(a["n"] == n for a in out["ablations"].values())
    once = evaluate_bundle(bundle, "stock_movement", tmp_path / "data", data_root, max_rows=QUICK_ROWS,
                           ablations=False)["stocknet"]
    assert "ablations" not in once and once["figures"]["test"]["mcc"] == out["figures"]["test"]["mcc"]

    # the same through `finmm evaluate` (quick): finmm is measured, ablation bars drawn, the loss is stated
    from rich.console import Console

    from finmm.config import load_settings
    from finmm.evaluate_command import run_evaluate

    settings = load_settings(None, [f"data.root={data_root}", f"data.output_dir={tmp_path / 'data'}"])
    monkeypatch.chdir(tmp_path)
    console = Console(file=open(tmp_path / "log.txt", "w"))
    assert run_evaluate(settings, "stock_movement", console, model_dir=bundle, quick=True) == 0
    report = json.loads((tmp_path / "reports/stock_movement.json").read_text())
    entry = report["datasets"]["stocknet"]
    assert entry["finmm"]["status"] == "measured" and "stock_movement_stocknet_ablation.png" in entry["plots"]
    assert "finmm ablations" in (tmp_path / "reports/stock_movement.md").read_text()


def test_german_fold_views(tmp_path):
    from evaluation.finmm_eval import german_fold_views

    src = tmp_path / "data" / "german_credit"
    for k in range(5):
        (src / f"fold{k}").mkdir(parents=True)
        pq.write_table(pa.table({"id": [f"r{k}a", f"r{k}b"], "label": [0, 1]}), src / f"fold{k}" / "part-0.parquet")
    (src / "manifest.json").write_text(json.dumps({"modalities": ["tabular"]}))
    (tmp_path / "data" / "tokenizer.json").write_text("{}")
    views = german_fold_views(tmp_path / "data", tmp_path / "views")
    assert len(views) == 5
    for k, view in enumerate(views):
        train = pq.read_table(view / "german_credit" / "train").column("id").to_pylist()
        test = pq.read_table(view / "german_credit" / "test").column("id").to_pylist()
        assert sorted(test) == [f"r{k}a", f"r{k}b"]
        assert len(train) == 8 and not set(train) & set(test)
        assert (view / "german_credit" / "manifest.json").exists() and (view / "tokenizer.json").exists()
