"""finmm's German Credit 5-fold CV end to end: five real Ray Train + DeepSpeed finetunes (tiny preset, a slice
of the real data), each scoring its held-out fold, recorded and shown by `finmm evaluate --task credit_risk`."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from finmm.config import load_settings
from finmm.evaluate_command import GERMAN_CV_RECORD, run_evaluate

pytestmark = pytest.mark.timeout(900)
ROWS_PER_FOLD = 30


@pytest.fixture(scope="module")
def german_slice(ray_cluster, tmp_path_factory):
    from actors.pipeline import prepare
    from actors.settings import DataSection

    out = tmp_path_factory.mktemp("german") / "data"
    prepare(DataSection(max_rows_per_split=ROWS_PER_FOLD, output_dir=out), ["german_credit"])
    return out


def test_every_row_is_scored_once_by_the_model_that_did_not_train_on_it(german_slice, tmp_path):
    settings = load_settings(None, [
        f"data.output_dir={german_slice}", "model.preset=tiny", "model.init_from_minilm=false",
        f"cluster.storage_path={tmp_path / 'runs'}", f"finetune.output_dir={tmp_path / 'finetune'}",
        "finetune.max_steps=3", "finetune.batch_size=16", "finetune.max_failures=0",
    ])
    console = Console(file=open(tmp_path / "log.txt", "w"))
    assert run_evaluate(settings, "credit_risk", console, quick=True, german_cv=True) == 0

    record = json.loads((german_slice.parent / "reports" / GERMAN_CV_RECORD).read_text())
    figures = record["figures"]
    assert set(figures["folds"]) == {f"fold{k}" for k in range(5)}
    assert all(fold["n"] == ROWS_PER_FOLD for fold in figures["folds"].values())
    assert figures["pooled"]["n"] == 5 * ROWS_PER_FOLD
    assert 0.0 <= figures["auc_mean"] <= 1.0 and figures["auc_std"] >= 0.0
    assert set(record["wall_s"]) == {f"fold{k}" for k in range(5)}
    assert record["hyperparameters"]["preset"] == "tiny"
    for k in range(5):  # one model per fold, trained without its held-out rows
        view = german_slice.parent / "eval" / "german_cv" / f"fold{k}" / "german_credit"
        assert not {p.name.split("-")[0] for p in (view / "train").glob("*.parquet")} & {f"fold{k}"}
        assert (german_slice.parent / "eval" / "german_cv" / f"model-fold{k}").exists()

    report = json.loads((german_slice.parent / "reports" / "credit_risk.json").read_text())
    german = report["datasets"]["german_credit"]["finmm"]
    assert german["status"] == "measured" and german["headline"]["auc_mean"] == pytest.approx(
        round(figures["auc_mean"], 4))
    assert "| **finmm** |" in (german_slice.parent / "reports" / "credit_risk.md").read_text()
